/**
 * A local registry as the push bench's child process, set up as AWS would run it: the Lambda
 * handlers behind the API Gateway emulator, with (`PUSH_BENCH_MODE=gateway`) or without
 * (`api`) the upload gateway. Prints `READY <url>` when it serves; stops when signalled or when
 * the bench's end of stdin closes.
 */
import { startLocalRegistry, type LocalRegistry } from '../local/local-registry.js';

let registry: LocalRegistry | undefined;
let stopRequested = false;

function stop(): void {
  if (stopRequested) return;
  stopRequested = true;
  if (!registry) return;
  registry.stop().finally(() => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();

registry = await startLocalRegistry({
  dataDir: process.env.PUSH_BENCH_DATA_DIR ?? '',
  port: 0,
  quiet: true,
  apiGateway: true,
  uploadGateway: process.env.PUSH_BENCH_MODE === 'gateway' ? {} : undefined,
});
if (stopRequested) await registry.stop().finally(() => process.exit(0));
process.stdout.write(`READY ${registry.url}\n`);
