import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { startLocalRegistry } from './local/local-registry.js';
import { stopOnSignals } from './local/child-processes.js';

/**
 * `npm start`: the registry on embedded stand-ins. Open to anyone by default, like
 * registry:2; `REGISTRY_AUTH=cognito` runs the production login flow against cognito-local.
 * `REGISTRY_SHAPE=aws` runs it as deployed instead (docs/local-deployed-shape.md), with or
 * without logins alike.
 */
const port = Number(process.env.PORT ?? 5000);
const dataDir = resolve(process.env.REGISTRY_DATA_DIR ?? '.registry-data');
const authMode = process.env.REGISTRY_AUTH ?? 'none';
if (authMode !== 'none' && authMode !== 'cognito') {
  console.error(`REGISTRY_AUTH must be "none" or "cognito", not "${authMode}"`);
  process.exit(2);
}
const admin = {
  username: process.env.REGISTRY_ADMIN_USER ?? 'admin',
  password: process.env.REGISTRY_ADMIN_PASSWORD ?? `${randomBytes(12).toString('base64url')}-Aa1`,
};

const shaped = process.env.REGISTRY_SHAPE === 'aws';
const registry = shaped
  ? await (await import('./local/deployed-shape/start.js')).startShape({ dataDir, port, auth: authMode, admin })
  : await startLocalRegistry({ dataDir, port, auth: authMode, admin });
if (!shaped) console.error(`Registry listening on ${registry.url}  (data in ${dataDir})`);
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

stopOnSignals(() => registry.stop());
