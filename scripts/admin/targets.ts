/**
 * Which registry the admin CLI works on, and how to reach its user pool and table:
 * - `--local [--data-dir D]`: the registry `npm start` is running, found through the
 *   `local-endpoints.json` the launcher keeps in its data dir while it runs;
 * - `--stack NAME [--region R]`: a deployed stack, found through its CloudFormation outputs;
 * - `--user-pool-id ID --table-name T [--region R]`: the same, given by hand.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { AwsCredentialIdentity } from '@aws-sdk/types';
import { AdminError, UsageError, isAwsError } from './errors.js';
import { LOCAL_CREDENTIALS } from '../local/local-credentials.js';
import { processIsAlive } from '../local/child-processes.js';

/** What a running local registry publishes about itself in `<dataDir>/local-endpoints.json`. */
export interface LocalEndpoints {
  dynamoEndpoint: string;
  s3Endpoint: string;
  /** Present when the registry runs with authentication (REGISTRY_AUTH=cognito). */
  cognitoEndpoint?: string;
  userPoolId?: string;
  clientId?: string;
  tableName: string;
  bucketName: string;
  region: string;
  /** The registry's own URL (`http://127.0.0.1:5000`), for hints such as `docker login <host>`. */
  registryUrl?: string;
  /** The launcher's process id, added by writeLocalEndpoints, so a stale file is recognised. */
  pid?: number;
}

export const LOCAL_ENDPOINTS_FILE = 'local-endpoints.json';
export const DEFAULT_DATA_DIR = '.registry-data';

/**
 * The data dir of the local registry, decided as `npm start` decides it: `--data-dir`, else
 * `REGISTRY_DATA_DIR`, else `.registry-data` in the working directory. `source` says which, for
 * messages.
 */
export function localDataDir(flag?: string): { dir: string; source: string } {
  if (flag !== undefined) return { dir: resolve(flag), source: '--data-dir' };
  const fromEnvironment = process.env.REGISTRY_DATA_DIR;
  if (fromEnvironment) return { dir: resolve(fromEnvironment), source: 'REGISTRY_DATA_DIR' };
  return { dir: resolve(DEFAULT_DATA_DIR), source: 'the default; --data-dir or REGISTRY_DATA_DIR name another' };
}

/** Where a local registry keeps upstream credentials (owner-only files), under its data dir: `npm start` and `--local` agree on it. */
export function upstreamCredentialsDir(dataDir: string): string {
  return join(resolve(dataDir), 'upstream-credentials');
}

export function localEndpointsPath(dataDir: string): string {
  return join(resolve(dataDir), LOCAL_ENDPOINTS_FILE);
}

/** For the local launcher: call once the stand-ins and the registry are up. Replaces the file
 * atomically, so a concurrent reader never sees half of it. */
export async function writeLocalEndpoints(dataDir: string, endpoints: LocalEndpoints): Promise<void> {
  const path = localEndpointsPath(dataDir);
  await mkdir(resolve(dataDir), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify({ ...endpoints, pid: endpoints.pid ?? process.pid }, null, 2)}\n`);
  await rename(temporary, path);
}

/** For the local launcher: call on stop, so that the CLI does not talk to dead endpoints. */
export async function removeLocalEndpoints(dataDir: string): Promise<void> {
  await rm(localEndpointsPath(dataDir), { force: true });
}

/** The endpoints of the registry running on `dataDir` (as localDataDir() gives it, or a path). */
export async function readLocalEndpoints(dataDir: string | { dir: string; source: string }): Promise<LocalEndpoints> {
  const { dir, source } = typeof dataDir === 'string' ? { dir: resolve(dataDir), source: '' } : dataDir;
  const path = localEndpointsPath(dir);
  let endpoints: LocalEndpoints;
  try {
    endpoints = JSON.parse(await readFile(path, 'utf8')) as LocalEndpoints;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      const why = source ? ` (${source})` : '';
      throw new AdminError(
        `no running local registry found in ${dir}${why}: no ${LOCAL_ENDPOINTS_FILE} there; start one with npm start, or name its data dir`,
      );
    }
    throw new AdminError(`cannot read ${path}: ${(error as Error).message}`);
  }
  if (typeof endpoints.dynamoEndpoint !== 'string' || typeof endpoints.tableName !== 'string') {
    throw new AdminError(`${path} does not describe a local registry`);
  }
  if (endpoints.pid !== undefined && !processIsAlive(endpoints.pid)) {
    throw new AdminError(`the local registry that wrote ${path} (pid ${endpoints.pid}) is no longer running`);
  }
  return endpoints;
}

/** Everything the commands need to build their clients. */
export interface AdminTarget {
  /** For messages: "the local registry in .registry-data", "stack registry-prod". */
  description: string;
  /** Undefined: the SDK's own resolution (AWS_REGION, profile). */
  region?: string;
  tableName?: string;
  userPoolId?: string;
  /** Local stand-ins only. */
  dynamoEndpoint?: string;
  cognitoEndpoint?: string;
  credentials?: AwsCredentialIdentity;
  /** The registry's host for `docker login` hints, when known. */
  registryHost?: string;
  /** Local registries: their data dir (webhook secrets are files there). */
  dataDir?: string;
  /** Where upstream credentials go (docs/pull-through.md): the local registry's owner-only directory, or the stack's SSM path. */
  upstreamCredentialsDir?: string;
  upstreamCredentialsPrefix?: string;
}

export interface TargetFlags {
  local?: boolean;
  'data-dir'?: string;
  stack?: string;
  region?: string;
  'user-pool-id'?: string;
  'table-name'?: string;
  registry?: string;
}

export async function resolveTarget(flags: TargetFlags): Promise<AdminTarget> {
  const awsFlags = (['stack', 'user-pool-id', 'table-name'] as const).filter((flag) => flags[flag] !== undefined);
  if (flags.local) {
    const conflicting = [...awsFlags, ...(flags.region ? ['region'] : [])];
    if (conflicting.length > 0) throw new UsageError(`--local cannot be combined with --${conflicting.join(', --')}`);
    return localTarget(localDataDir(flags['data-dir']), flags.registry);
  }
  if (flags['data-dir'] !== undefined) throw new UsageError('--data-dir goes with --local');
  if (flags.stack !== undefined) {
    if (flags['user-pool-id'] || flags['table-name']) {
      throw new UsageError('--stack reads the user pool and table from the stack: leave out --user-pool-id and --table-name');
    }
    return stackTarget(flags.stack, flags.region, flags.registry);
  }
  if (awsFlags.length > 0) {
    return {
      description: [flags['user-pool-id'] && `user pool ${flags['user-pool-id']}`, flags['table-name'] && `table ${flags['table-name']}`]
        .filter(Boolean)
        .join(' and '),
      region: flags.region,
      userPoolId: flags['user-pool-id'],
      tableName: flags['table-name'],
      registryHost: flags.registry,
    };
  }
  throw new UsageError('say which registry: --local, --stack <name>, or --user-pool-id/--table-name');
}

async function localTarget(dataDir: { dir: string; source: string }, registry: string | undefined): Promise<AdminTarget> {
  const endpoints = await readLocalEndpoints(dataDir);
  return {
    description: `the local registry in ${dataDir.dir}`,
    region: endpoints.region,
    tableName: endpoints.tableName,
    userPoolId: endpoints.userPoolId,
    dynamoEndpoint: endpoints.dynamoEndpoint,
    cognitoEndpoint: endpoints.cognitoEndpoint,
    credentials: LOCAL_CREDENTIALS,
    registryHost: registry ?? (endpoints.registryUrl ? new URL(endpoints.registryUrl).host : undefined),
    dataDir: dataDir.dir,
    upstreamCredentialsDir: upstreamCredentialsDir(dataDir.dir),
  };
}

/** The stack outputs the CLI reads; `RegistryUrl` is optional and only feeds hints. */
export const STACK_OUTPUTS = {
  userPoolId: 'UserPoolId',
  userPoolClientId: 'UserPoolClientId',
  tableName: 'TableName',
  registryUrl: 'RegistryUrl',
  upstreamCredentialsPrefix: 'UpstreamCredentialsPrefix',
} as const;

async function stackTarget(stackName: string, region: string | undefined, registry: string | undefined): Promise<AdminTarget> {
  const outputs = await readStackOutputs(stackName, region);
  const missing = [STACK_OUTPUTS.userPoolId, STACK_OUTPUTS.tableName].filter((name) => !outputs[name]);
  if (missing.length > 0) throw new AdminError(`stack ${stackName} has no output ${missing.join(' or ')}`);
  const registryUrl = outputs[STACK_OUTPUTS.registryUrl];
  return {
    description: `stack ${stackName}`,
    region,
    userPoolId: outputs[STACK_OUTPUTS.userPoolId],
    tableName: outputs[STACK_OUTPUTS.tableName],
    registryHost: registry ?? (registryUrl ? new URL(registryUrl).host : undefined),
    upstreamCredentialsPrefix: outputs[STACK_OUTPUTS.upstreamCredentialsPrefix],
  };
}

async function readStackOutputs(stackName: string, region: string | undefined): Promise<Record<string, string>> {
  const { CloudFormationClient, DescribeStacksCommand } = await import('@aws-sdk/client-cloudformation');
  const cloudFormation = new CloudFormationClient({ region });
  try {
    const { Stacks } = await cloudFormation.send(new DescribeStacksCommand({ StackName: stackName }));
    const outputs: Record<string, string> = {};
    for (const output of Stacks?.[0]?.Outputs ?? []) {
      if (output.OutputKey && output.OutputValue) outputs[output.OutputKey] = output.OutputValue;
    }
    return outputs;
  } catch (error) {
    // DescribeStacks answers a missing stack with a ValidationError "Stack with id X does not exist".
    if (isAwsError(error, 'ValidationError')) throw new AdminError(`stack ${stackName}: ${(error as Error).message}`);
    throw error;
  } finally {
    cloudFormation.destroy();
  }
}
