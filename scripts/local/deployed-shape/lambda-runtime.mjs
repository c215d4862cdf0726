// One Lambda execution environment of the local deployed shape (lambda-emulator.ts forks it):
// plain Node, no TypeScript loader, like the nodejs22.x runtime. It imports the bundle once (the
// cold start: module-level initialisation runs here, as in Lambda's init phase), then handles the
// invocations it is sent, one at a time.
import { pathToFileURL } from 'node:url';

const [bundle, functionName, functionArn] = process.argv.slice(2);
const deadlineMs = Number(process.env.AWS_LAMBDA_FUNCTION_TIMEOUT ?? 29) * 1000;

let handler;
try {
  ({ handler } = await import(pathToFileURL(bundle).href));
  if (typeof handler !== 'function') throw new Error(`${bundle} exports no handler function`);
  process.send({ type: 'ready' });
} catch (error) {
  process.send({ type: 'init-error', error: String(error?.stack ?? error) });
  process.disconnect();
  process.exitCode = 1;
}

process.on('message', async ({ id, event }) => {
  const started = Date.now();
  const context = {
    awsRequestId: id,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: functionArn,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadlineMs - (Date.now() - started)),
  };
  try {
    const result = await handler(event, context);
    process.send({ type: 'result', id, result });
  } catch (error) {
    process.send({ type: 'error', id, error: String(error?.stack ?? error) });
  }
});
