import { startDeployedShape, type DeployedShape } from './deployed-shape.js';

/**
 * `REGISTRY_SHAPE=aws npm start` (scripts/start-local.ts calls this): the registry as deployed,
 * on the local stand-ins (docs/local-deployed-shape.md). `REGISTRY_UPLOAD_GATEWAY=1` adds the
 * upload gateway behind the front door; `REGISTRY_AUTH=cognito` the token function and
 * cognito-local, with `admin` seeded.
 */
export async function startShape(options: {
  dataDir: string;
  port: number;
  auth: 'none' | 'cognito';
  admin: { username: string; password: string };
  /** REGISTRY_PULL_EVENTS, REGISTRY_AUDIT_PULLS (scripts/start-local.ts): the CDK's pullEvents and auditPulls. */
  pulls?: { pullEvents: boolean; auditPulls: boolean };
}): Promise<DeployedShape> {
  const uploadGateway = ['1', 'true', 'yes'].includes((process.env.REGISTRY_UPLOAD_GATEWAY ?? '').toLowerCase());
  const shape = await startDeployedShape({ ...options, uploadGateway });
  console.error(`Registry (deployed shape) listening on ${shape.url}  (data in ${options.dataDir})`);
  console.error('  CloudFront emulator → API Gateway emulator → registry function bundled for Lambda; monolithic blob PUTs → S3 stand-in');
  console.error(`  upload gateway: ${uploadGateway ? 'on, behind the front door' : 'off (REGISTRY_UPLOAD_GATEWAY=1 adds it)'}`);
  if (shape.auth) console.error('  logins: /token → the token function bundled for Lambda → cognito-local');
  if (options.pulls?.pullEvents) console.error('  pull events: on (counted per minute, REGISTRY_PULL_EVENTS)');
  if (options.pulls?.auditPulls) console.error('  audited pulls: on (REGISTRY_AUDIT_PULLS)');
  return shape;
}
