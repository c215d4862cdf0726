/**
 * Our registry as a child process of the bench, so its memory can be read from /proc.
 * Same as `npm start` (scripts/start-local.ts) but quiet like the reference, on the port
 * the bench chose. It stops when signalled, even while starting, or when the bench's end of
 * stdin closes, so that a bench that dies leaves neither it nor its DynamoDB Local JVM behind.
 */
import { startLocalRegistry, type LocalRegistry } from '../local/local-registry.js';

let registry: LocalRegistry | undefined;
let stopRequested = false;

function stop(): void {
  if (stopRequested) return;
  stopRequested = true;
  registry?.stop().finally(() => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();

registry = await startLocalRegistry({
  dataDir: process.env.BENCH_DATA_DIR ?? '',
  port: Number(process.env.BENCH_PORT),
  quiet: true,
});
if (stopRequested) await registry.stop().finally(() => process.exit(0));
