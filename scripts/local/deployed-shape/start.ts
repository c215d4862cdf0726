import { localDataDir } from '../../admin/targets.js';
import { stopOnSignals } from '../child-processes.js';
import { stopWithParent } from '../stop-with-parent.js';
import { startDeployedShape } from './deployed-shape.js';

/**
 * `REGISTRY_SHAPE=aws npm start` (scripts/start-local.ts imports this module): the registry as
 * deployed, on the local stand-ins (docs/local-deployed-shape.md). `REGISTRY_UPLOAD_GATEWAY=1`
 * adds the upload gateway behind the front door. The module's evaluation never ends: the
 * process runs until SIGINT or SIGTERM.
 */
const port = Number(process.env.PORT ?? 5000);
const dataDir = localDataDir().dir;
if (process.env.REGISTRY_AUTH && process.env.REGISTRY_AUTH !== 'none') {
  console.error('REGISTRY_SHAPE=aws runs with open access only: it has no Cognito or SSM stand-in for the token endpoint.');
  process.exit(2);
}
const uploadGateway = ['1', 'true', 'yes'].includes((process.env.REGISTRY_UPLOAD_GATEWAY ?? '').toLowerCase());

const shape = await startDeployedShape({ dataDir, port, uploadGateway });
console.error(`Registry (deployed shape) listening on ${shape.url}  (data in ${dataDir})`);
console.error('  CloudFront emulator → API Gateway emulator → registry function bundled for Lambda; monolithic blob PUTs → S3 stand-in');
console.error(`  upload gateway: ${uploadGateway ? 'on, behind the front door' : 'off (REGISTRY_UPLOAD_GATEWAY=1 adds it)'}`);
console.error('Authentication is OFF: anyone who can reach this port can push and pull.');
console.error(`Push: skopeo copy --dest-tls-verify=false oci:<dir>:<tag> docker://127.0.0.1:${shape.port}/<name>:<tag>`);

stopOnSignals(() => shape.stop());
// As plain `npm start` does: the end of the npm process that ran it stops it too.
if (process.env.npm_lifecycle_event) stopWithParent(() => process.kill(process.pid, 'SIGTERM'));
await new Promise<never>(() => undefined);
