import { createServer, type Server } from 'node:http';
import type { Logger } from '../../../registry/support/logger.js';
import type { LambdaFunction } from './lambda-emulator.js';

/** Lambda's retries of a failed asynchronous invocation (the copier's `retryAttempts`). */
const ASYNC_RETRIES = 2;
const RETRY_DELAY_MS = 1_000;

/**
 * Lambda's Invoke API (`POST /2015-03-31/functions/<name>/invocations`) for the emulated
 * functions, as the SDK's InvokeCommand calls it through LAMBDA_ENDPOINT: `Event` invocations are
 * answered 202 at once and run in the background, retried twice on failure as Lambda retries
 * asynchronous events; `RequestResponse` ones answer the function's result. Signatures are not
 * checked (the stand-ins trust their callers, as s3rver does).
 */
export function createLambdaInvokeApi(functions: () => Record<string, LambdaFunction | undefined>, logger: Logger): Server {
  return createServer((request, response) => {
    const match = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/.exec(request.url?.split('?')[0] ?? '');
    const fn = match ? Object.values(functions()).find((candidate) => candidate?.name === decodeURIComponent(match[1]!)) : undefined;
    if (request.method !== 'POST' || !fn) {
      response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ Type: 'User', message: 'Function not found' }));
      return;
    }
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const event: unknown = text ? JSON.parse(text) : {};
      if (request.headers['x-amz-invocation-type'] === 'Event') {
        response.writeHead(202).end();
        const run = (attempt: number): void => {
          fn.invoke(event).catch((error: unknown) => {
            logger.warn('asynchronous invocation failed', { function: fn.name, attempt, error: String(error) });
            if (attempt <= ASYNC_RETRIES) setTimeout(() => run(attempt + 1), RETRY_DELAY_MS).unref();
          });
        };
        run(1);
        return;
      }
      fn.invoke(event).then(
        (result) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result ?? null)),
        (error: unknown) =>
          response
            .writeHead(200, { 'content-type': 'application/json', 'x-amz-function-error': 'Unhandled' })
            .end(JSON.stringify({ errorMessage: String(error) })),
      );
    });
  });
}
