import type { Logger } from '../../support/logger.js';
import type { CopyDispatch, CopyRequest } from './blob-copy.js';

/** How long an in-process copy may run before it checkpoints and queues itself again. */
const IN_PROCESS_RUN_MS = 10 * 60_000;
/** Copies at once in one process: each holds about two 16 MiB parts. */
const IN_PROCESS_CONCURRENCY = 2;
/** Runs of a failed copy again, as Lambda retries a failed asynchronous event (the copier's retryAttempts). */
const IN_PROCESS_RETRIES = 2;
const RETRY_DELAY_MS = 1_000;

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
 * copy is logged and run again up to `IN_PROCESS_RETRIES` times, as Lambda retries the event;
 * after that the lease lapses and the next pull starts it again.
 */
export function inProcessDispatch(copy: (request: CopyRequest, deadline: number) => Promise<unknown>, logger: Logger): CopyDispatch {
  const queue: { request: CopyRequest; attempt: number }[] = [];
  let running = 0;
  const next = (): void => {
    while (running < IN_PROCESS_CONCURRENCY && queue.length > 0) {
      const { request, attempt } = queue.shift()!;
      running++;
      copy(request, Date.now() + IN_PROCESS_RUN_MS)
        .then((outcome) => logger.info('pull-through copy', { digest: request.digest, upstream: request.upstream, attempt, outcome }))
        .catch((error: unknown) => {
          logger.warn('pull-through copy failed', { digest: request.digest, upstream: request.upstream, attempt, error: String(error) });
          if (attempt <= IN_PROCESS_RETRIES) setTimeout(() => enqueue(request, attempt + 1), RETRY_DELAY_MS).unref();
        })
        .finally(() => {
          running--;
          next();
        });
    }
  };
  const enqueue = (request: CopyRequest, attempt: number): void => {
    queue.push({ request, attempt });
    // After the current request has answered: a dispatch never delays the pull that made it.
    setImmediate(next);
  };
  return async (request) => enqueue(request, 1);
}
