import './local/quiet-sdk-warning.js';
import { randomBytes } from 'node:crypto';
import { localDataDir } from './admin/targets.js';
import { dynamoDbLocalPath, startDynamoDbLocal } from './local/dynamodb-local.js';
import { checkPortFree, LocalStartError } from './local/start-errors.js';
import { stopWithParent } from './local/stop-with-parent.js';
import { AUDIT_DEFAULTS } from '../registry/config/config.js';

/**
 * `npm start`: the registry on embedded stand-ins. Open to anyone by default, like
 * registry:2; `REGISTRY_AUTH=cognito` runs the production login flow against cognito-local.
 * `REGISTRY_SHAPE=aws` runs it as deployed instead (docs/local-deployed-shape.md), with or
 * without logins alike.
 *
 * Start-up: the port is checked first; then DynamoDB Local's JVM is launched, and only then is
 * the registry's code (and the AWS SDK) loaded, while the JVM boots: the two overlap instead of
 * adding up. This module imports nothing heavy for that reason.
 *
 * Stopping: Ctrl-C, SIGTERM or SIGHUP to this process or to the npm process running it (npm
 * passes SIGTERM on; the script is `exec`ed, so there is no shell between), and the end of
 * the npm process however it ends, all stop the stand-ins it started and free their ports.
 */
const port = Number(process.env.PORT ?? 5000);
/** DOCKER_MIRROR_PORT: also serve the Docker Hub mirror entry there (docs/pull-through.md), for dockerd's `registry-mirrors`. */
const dockerMirrorPort = process.env.DOCKER_MIRROR_PORT ? Number(process.env.DOCKER_MIRROR_PORT) : undefined;
const dataDir = localDataDir().dir;
const authMode = process.env.REGISTRY_AUTH ?? 'none';
if (!Number.isInteger(port) || port < 0 || port > 65_535) fail(`PORT must be a port number, not "${process.env.PORT}"`, 2);
if (dockerMirrorPort !== undefined && (!Number.isInteger(dockerMirrorPort) || dockerMirrorPort < 1 || dockerMirrorPort > 65_535)) {
  fail(`DOCKER_MIRROR_PORT must be a port number, not "${process.env.DOCKER_MIRROR_PORT}"`, 2);
}
if (authMode !== 'none' && authMode !== 'cognito') fail(`REGISTRY_AUTH must be "none" or "cognito", not "${authMode}"`, 2);
/** The CDK's `pullEvents` and `auditPulls` options, off by default as there (docs/events.md, docs/audit-log.md). */
const pulls = { pullEvents: isOn(process.env.REGISTRY_PULL_EVENTS), auditPulls: isOn(process.env.REGISTRY_AUDIT_PULLS) };
const admin = {
  username: process.env.REGISTRY_ADMIN_USER ?? 'admin',
  password: process.env.REGISTRY_ADMIN_PASSWORD ?? `${randomBytes(12).toString('base64url')}-Aa1`,
};

const host = '127.0.0.1';
console.error(`Starting the registry on ${host}:${port} (data in ${dataDir}): DynamoDB Local (Java) and s3rver first…`);
/** What both shapes answer once started (LocalRegistry, DeployedShape). */
let registry:
  | { url: string; port: number; auth?: { userPoolId: string; adminCreated: boolean }; dockerMirrorUrl?: string; stop(): Promise<void> }
  | undefined;
const shaped = process.env.REGISTRY_SHAPE === 'aws';
let stopping = false;
const stop = (why: string) => {
  if (stopping) return;
  stopping = true;
  console.error(`Stopping (${why})…`);
  // During the start there is nothing to save: exiting ends the JVM (stopChildProcess kills it
  // on exit) and s3rver with this process.
  if (!registry) process.exit(1);
  registry.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
};
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => stop(signal));
// Run by npm (npm sets npm_lifecycle_event): the npm process is what supervisors stop. Run
// directly (`nohup node --import tsx scripts/start-local.ts &`) it outlives its shell on purpose.
if (process.env.npm_lifecycle_event) stopWithParent(() => stop('the npm process that started it ended'));

try {
  await checkPortFree(host, port);
  if (shaped) {
    registry = await (await import('./local/deployed-shape/start.js')).startShape({ dataDir, port, auth: authMode, admin, pulls });
  } else {
    const dynamoDbLocal = startDynamoDbLocal(host, dynamoDbLocalPath(dataDir), (line) => console.error(`  ${line}`));
    dynamoDbLocal.catch(() => undefined); // awaited, and reported, by startLocalRegistry
    const loadingStarted = process.uptime();
    const { startLocalRegistry } = await import('./local/local-registry.js');
    console.error(`  registry code loaded (${(process.uptime() - loadingStarted).toFixed(1)} s, while the JVM starts)`);
    registry = await startLocalRegistry({
      dataDir,
      host,
      port,
      auth: authMode,
      admin,
      dynamoDbLocal,
      dockerMirrorPort,
      onProgress: (line) => console.error(`  ${line}`),
      overrides: {
        ...(pulls.pullEvents ? { events: { pullEvents: true, localTargets: true } } : {}),
        ...(pulls.auditPulls ? { audit: { ...AUDIT_DEFAULTS, pulls: true } } : {}),
      },
    });
  }
} catch (error) {
  if (error instanceof LocalStartError) fail(error.message, 1);
  throw error;
}
if (!shaped) console.error(`Registry listening on ${registry.url} after ${process.uptime().toFixed(1)} s since node started  (data in ${dataDir})`);
if (registry.dockerMirrorUrl) console.error(`Docker Hub mirror entry (registry-mirrors) on ${registry.dockerMirrorUrl}`);
if (registry.auth) {
  console.error(`Authentication is ON: logins come from the local Cognito user pool ${registry.auth.userPoolId}.`);
  if (registry.auth.adminCreated && !process.env.REGISTRY_ADMIN_PASSWORD) {
    // Shown this once only: it is stored nowhere but in the user pool.
    console.error(`Created admin account "${admin.username}" with password: ${admin.password}`);
  } else if (registry.auth.adminCreated) {
    console.error(`Created admin account "${admin.username}" with the password from REGISTRY_ADMIN_PASSWORD.`);
  }
  console.error(`Log in: skopeo login --tls-verify=false -u ${admin.username} 127.0.0.1:${registry.port}`);
} else {
  console.error('Authentication is OFF: anyone who can reach this port can push and pull (REGISTRY_AUTH=cognito turns it on).');
}
console.error(`Push: skopeo copy --dest-tls-verify=false oci:<dir>:<tag> docker://127.0.0.1:${registry.port}/<name>:<tag>`);
console.error(`Health: curl http://127.0.0.1:${registry.port}/health    Stop: Ctrl-C`);

function fail(message: string, code: number): never {
  console.error(`npm start: ${message}`);
  process.exit(code);
}

function isOn(value: string | undefined): boolean {
  return ['1', 'true', 'yes'].includes((value ?? '').toLowerCase());
}
