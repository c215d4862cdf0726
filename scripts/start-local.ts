import { resolve } from 'node:path';
import { startLocalRegistry } from './local/local-registry.js';

/** `npm start`: the registry on embedded stand-ins, open to anyone, like registry:2. */
const port = Number(process.env.PORT ?? 5000);
const dataDir = resolve(process.env.REGISTRY_DATA_DIR ?? '.registry-data');

const registry = await startLocalRegistry({ dataDir, port });
console.error(`Registry listening on ${registry.url}  (data in ${dataDir})`);
console.error('Authentication is OFF: anyone who can reach this port can push and pull.');
console.error('Try: skopeo copy --dest-tls-verify=false oci:<dir>:<tag> docker://127.0.0.1:' + registry.port + '/<name>:<tag>');

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    console.error('Stopping…');
    registry.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  });
}
