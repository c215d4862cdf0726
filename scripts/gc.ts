/**
 * `npm run gc -- [--dry-run] [--grace SECONDS] [--json] [target]`: one garbage collection run,
 * from a shell. By default a short summary for a person on stdout (what was freed, what was kept
 * and why, how long) and a line per phase on stderr; with --json the full report on stdout and
 * the run's log as JSON lines on stderr.
 *
 * Targets:
 *   (none)                     the local registry `npm start` runs, found through
 *                              <data dir>/local-endpoints.json; the data dir is --data-dir,
 *                              else REGISTRY_DATA_DIR, else .registry-data
 *   --stack NAME [--region R]  a deployed stack, by its TableName and BucketName outputs
 *   --table T --bucket B [--region R]   the same, by hand
 *
 * Options: --segments N (parallel Scan segments, default 8), --concurrency N (deletes in
 * flight, default 32). Exit codes: 0 done, 1 the run failed or some of its steps did, 2 a wrong
 * command line.
 */
import './local/quiet-sdk-warning.js';
import { parseArgs } from 'node:util';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import type { AwsCredentialIdentity } from '@aws-sdk/types';
import { createAwsClients } from '../registry/storage/aws-clients.js';
import { jsonLogger, type Logger } from '../registry/support/logger.js';
import type { RegistryConfig } from '../registry/config/config.js';
import { collectGarbage, DEFAULT_GRACE_SECONDS, type GcReport } from '../registry/services/gc/index.js';
import { localDataDir, readLocalEndpoints, type LocalEndpoints } from './admin/targets.js';
import { LOCAL_CREDENTIALS } from './local/local-credentials.js';
import { describeError } from './admin/errors.js';

const USAGE = `usage: npm run gc -- [--dry-run] [--grace SECONDS] [--json] [target] [--segments N] [--concurrency N]

One garbage collection run: deletes blobs no manifest references and nothing has linked or
touched for the grace period (default ${DEFAULT_GRACE_SECONDS} s), expired uploads and orphan objects.

Target (one of):
  (none) [--data-dir DIR]              the registry npm start runs (data dir: --data-dir, else
                                       REGISTRY_DATA_DIR, else .registry-data)
  --stack NAME [--region R]            a deployed stack, by its TableName and BucketName outputs
  --table T --bucket B [--region R]    the same, by hand

Options:
  --dry-run          report what would be deleted, delete nothing
  --grace SECONDS    keep unreferenced blobs this long after their last use
  --json             the full report as JSON on stdout, the log as JSON lines on stderr
  --segments N       parallel Scan segments (default 8)
  --concurrency N    deletes in flight (default 32)

Examples:
  npm run gc -- --dry-run                          # what would go, on the local registry
  npm run gc -- --grace 600                        # delete what is unreferenced for 10 minutes
  npm run gc -- --stack oci-registry --json | jq .bytesFreed

Exit codes: 0 done, 1 the run failed or some of its steps did (the reason on stderr), 2 wrong command line.`;

/** The bucket `npm start` creates (scripts/local/local-registry.ts), when the endpoints file does not name one. */
const LOCAL_BUCKET = 'registry-blobs';
/**
 * Below this, blobs uploaded for a push still in progress may be taken before its manifest
 * comes (the push then fails and is retried); an image whose push succeeded is never broken.
 */
const SHORT_GRACE_SECONDS = 15 * 60;

class UsageError extends Error {}

interface Target {
  description: string;
  config: RegistryConfig;
  credentials?: AwsCredentialIdentity;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      'dry-run': { type: 'boolean' },
      grace: { type: 'string' },
      'data-dir': { type: 'string' },
      stack: { type: 'string' },
      table: { type: 'string' },
      bucket: { type: 'string' },
      region: { type: 'string' },
      segments: { type: 'string' },
      concurrency: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  const json = values.json ?? false;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const graceSeconds = values.grace === undefined ? DEFAULT_GRACE_SECONDS : wholeNumber('--grace', values.grace, 0);
  const target = await resolveTarget(values);
  const logger = json ? jsonLogger((line) => process.stderr.write(`${line}\n`)) : progressLogger();
  if (graceSeconds < SHORT_GRACE_SECONDS && !values['dry-run']) {
    console.error(
      `Note: a grace period of ${graceSeconds} s is shorter than a push may take: blobs uploaded for pushes in progress on ` +
        `${target.description} may be taken before their manifest comes, and those pushes fail (MANIFEST_BLOB_UNKNOWN or ` +
        'BLOB_UPLOAD_INVALID) and have to be retried. Images already pushed are never affected.',
    );
  }
  const clients = createAwsClients(target.config, target.credentials);
  try {
    const report = await collectGarbage(
      { dynamo: clients.dynamo, s3: clients.s3, tableName: target.config.tableName, bucketName: target.config.bucketName },
      {
        graceSeconds,
        dryRun: values['dry-run'] ?? false,
        scanSegments: values.segments === undefined ? undefined : wholeNumber('--segments', values.segments, 1),
        concurrency: values.concurrency === undefined ? undefined : wholeNumber('--concurrency', values.concurrency, 1),
        logger,
      },
    );
    console.log(json ? JSON.stringify(report, null, 2) : summary(report, target.description));
    return report.errors > 0 ? 1 : 0;
  } finally {
    clients.dynamo.destroy();
    clients.s3.destroy();
  }
}

async function resolveTarget(values: Record<string, string | boolean | undefined>): Promise<Target> {
  const stack = values.stack as string | undefined;
  const table = values.table as string | undefined;
  const bucket = values.bucket as string | undefined;
  const region = values.region as string | undefined;
  if (stack !== undefined) {
    if (table || bucket || values['data-dir'])
      throw new UsageError('--stack reads the table and bucket from the stack: leave out --table, --bucket, --data-dir');
    const outputs = await stackOutputs(stack, region);
    if (!outputs.TableName || !outputs.BucketName) throw new Error(`stack ${stack} has no TableName or BucketName output`);
    return { description: `stack ${stack}`, config: awsConfig(outputs.TableName, outputs.BucketName, region) };
  }
  if (table !== undefined || bucket !== undefined) {
    if (!table || !bucket) throw new UsageError('--table and --bucket go together');
    if (values['data-dir']) throw new UsageError('--data-dir is for the local registry');
    return { description: `table ${table} and bucket ${bucket}`, config: awsConfig(table, bucket, region) };
  }
  if (region) throw new UsageError('--region goes with --stack or --table/--bucket');
  const dataDir = localDataDir(values['data-dir'] as string | undefined);
  const endpoints = (await readLocalEndpoints(dataDir)) as LocalEndpoints & { bucketName?: string };
  return {
    description: `the local registry in ${dataDir.dir}`,
    config: {
      ...awsConfig(endpoints.tableName, endpoints.bucketName ?? LOCAL_BUCKET, endpoints.region),
      dynamoEndpoint: endpoints.dynamoEndpoint,
      s3Endpoint: endpoints.s3Endpoint,
    },
    credentials: LOCAL_CREDENTIALS,
  };
}

function awsConfig(tableName: string, bucketName: string, region: string | undefined): RegistryConfig {
  return {
    region: region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    tableName,
    bucketName,
    // Not used by GC; RegistryConfig wants them.
    presignExpirySeconds: 300,
    uploadSessionTtlSeconds: 24 * 3600,
  };
}

async function stackOutputs(stackName: string, region: string | undefined): Promise<Record<string, string>> {
  const cloudFormation = new CloudFormationClient({ region });
  try {
    const { Stacks } = await cloudFormation.send(new DescribeStacksCommand({ StackName: stackName }));
    return Object.fromEntries(
      (Stacks?.[0]?.Outputs ?? []).flatMap((output) => (output.OutputKey && output.OutputValue ? [[output.OutputKey, output.OutputValue]] : [])),
    );
  } finally {
    cloudFormation.destroy();
  }
}

function wholeNumber(flag: string, raw: string, minimum: number): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < minimum) throw new UsageError(`${flag} must be an integer of at least ${minimum}, got "${raw}"`);
  return value;
}

/** What a person wants to know after a run: what went, what stayed and why, how long. */
export function summary(report: GcReport, where: string): string {
  const verb = report.dryRun ? 'Would free' : 'Freed';
  const lines = [
    `${verb} ${formatBytes(report.bytesFreed + report.orphanBytesFreed)} on ${where} in ${(report.durationMs / 1000).toFixed(1)} s` +
      `${report.dryRun ? ' (dry run: nothing was deleted)' : ''}:`,
    `  ${count(report.blobsDeleted, 'unreferenced blob')} (${formatBytes(report.bytesFreed)}), ${count(report.linksDeleted, 'repository link')}, ` +
      `${count(report.sessionsExpired, 'expired upload')}, ${count(report.orphanObjectsDeleted, 'orphan object')} (${formatBytes(report.orphanBytesFreed)})`,
    `Kept ${count(report.blobRecords - report.blobsDeleted, 'blob')}: ${report.blobsLive} referenced by a manifest, ` +
      `${report.blobsInGrace} unreferenced but used within the grace period (${report.graceSeconds} s; --grace changes it)` +
      (report.claimsRefused > 0 ? `, ${report.claimsRefused} used again while this run looked at them` : ''),
  ];
  if (report.orphanBlobObjectsPending > 0) {
    lines.push(`${count(report.orphanBlobObjectsPending, 'orphan object')} seen for the first time: the next run deletes them if still unowned`);
  }
  if (!report.complete) lines.push(`Stopped by the deadline in the ${report.stoppedIn} phase: the next run continues.`);
  if (report.errors > 0)
    lines.push(`${count(report.errors, 'step')} failed (stderr says which; --json logs them in full); a later run retries them.`);
  return lines.join('\n');
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** One line per phase on stderr as the run goes, and any warning or error in a line of its own. */
function progressLogger(): Logger {
  const write = (line: string) => process.stderr.write(`gc: ${line}\n`);
  const problem = (message: string, fields: Record<string, unknown> = {}) => {
    const { runId: _runId, ...shown } = fields;
    write(`${message}${Object.keys(shown).length > 0 ? ` ${JSON.stringify(shown)}` : ''}`);
  };
  return {
    info(message, fields = {}) {
      if (message === 'gc started') write(`marking: reading every manifest, tag, link and blob record (grace ${fields.graceSeconds} s)…`);
      else if (message === 'gc marked')
        write(`marked ${fields.itemsScanned} items in ${((fields.ms as number) / 1000).toFixed(1)} s; sweeping blobs…`);
      else if (message === 'gc blob sweep')
        write(`${fields.candidates} unreferenced blobs past the grace period; sweeping uploads and orphan objects…`);
    },
    warn: problem,
    error: problem,
  };
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`gc: ${(error as Error).message}\nRun npm run gc -- --help for usage.`);
      process.exit(2);
    }
    console.error(`gc: ${describeError(error)}`);
    process.exit(1);
  },
);
