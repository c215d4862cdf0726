import type { Logger } from '../../support/logger.js';
import type { CopyDispatch, CopyRequest } from './blob-copy.js';

/** How long an in-process copy may run before it checkpoints and queues itself again. */
const IN_PROCESS_RUN_MS = 10 * 60_000;
/** Copies at once in one process: each holds about two 16 MiB parts. */
const IN_PROCESS_CONCURRENCY = 2;

/**
 * In AWS: an asynchronous invoke of the copier function (BLOB_COPIER_FUNCTION), one blob per
 * event, with Lambda's own retries; the lease makes a duplicate event harmless and a lost one is
 * redone by the next pull once the lease lapses. The deployed local shape invokes its Lambda
 * emulator the same way (LAMBDA_ENDPOINT).
 */
export function invokingDispatch(invoker: { invoke(event: unknown): Promise<void> }): CopyDispatch {
  return (request) => invoker.invoke(request);
}

/**
 * `npm start` and tests: an in-process queue, `IN_PROCESS_CONCURRENCY` copies at a time, each
 * run given `IN_PROCESS_RUN_MS` (it checkpoints and queues itself again after that). A failed
 * copy is logged; the lease lapses and the next pull starts it again.
 */
export function inProcessDispatch(copy: (request: CopyRequest, deadline: number) => Promise<unknown>, logger: Logger): CopyDispatch {
  const queue: CopyRequest[] = [];
  let running = 0;
  const next = (): void => {
    while (running < IN_PROCESS_CONCURRENCY && queue.length > 0) {
      const request = queue.shift()!;
      running++;
      copy(request, Date.now() + IN_PROCESS_RUN_MS)
        .catch((error: unknown) =>
          logger.warn('pull-through copy failed', { digest: request.digest, upstream: request.upstream, error: String(error) }),
        )
        .finally(() => {
          running--;
          next();
        });
    }
  };
  return async (request) => {
    queue.push(request);
    // After the current request has answered: a dispatch never delays the pull that made it.
    setImmediate(next);
  };
}
