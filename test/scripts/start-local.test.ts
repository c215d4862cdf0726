/**
 * `npm start` as a user (or a supervisor) meets it, by spawning it: a port in use is refused at
 * once in one line naming who holds it, a missing Java runtime prints only the hint, and
 * stopping the npm process (SIGTERM, or SIGKILL, which npm cannot pass on) stops the server and
 * the JVM, leaving no port answering and no endpoints file behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { findFreePort, processIsAlive } from '../../scripts/local/child-processes.js';
import { portOwner } from '../../scripts/local/start-errors.js';

const REPO = join(import.meta.dirname, '../..');

let workDir: string;
beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'start-local-'));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

function start(command: string, args: string[], env: Record<string, string>): { child: ChildProcess; stderr: () => string } {
  const child = spawn(command, args, { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout!.on('data', () => {});
  return { child, stderr: () => stderr };
}

function startLocal(env: Record<string, string>) {
  return start(process.execPath, ['--import', 'tsx', 'scripts/start-local.ts'], env);
}

async function exited(child: ChildProcess, withinMs: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const timer = setTimeout(() => child.kill('SIGKILL'), withinMs);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  return code as number | null;
}

async function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function until(condition: () => boolean | Promise<boolean>, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return condition();
}

describe('a port already in use', () => {
  it('is refused at once, in one line naming who holds it and how to choose another, before any stand-in starts', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as AddressInfo).port;
    const dataDir = join(workDir, 'port-in-use');
    try {
      const started = Date.now();
      const { child, stderr } = startLocal({ PORT: String(port), REGISTRY_DATA_DIR: dataDir });
      expect(await exited(child, 20_000)).toBe(1);
      expect(Date.now() - started).toBeLessThan(10_000);
      const lines = stderr().trim().split('\n');
      expect(lines.at(-1)).toBe(
        `npm start: port ${port} on 127.0.0.1 is already in use by ${await portOwner(port)}: stop that, or choose another port, e.g. PORT=${port + 1} npm start`,
      );
      expect(lines.at(-1)).toMatch(new RegExp(`by pid ${process.pid} \\(`));
      expect(stderr()).not.toMatch(/EADDRINUSE|\n\s+at /);
      expect(existsSync(join(dataDir, 'dynamodb'))).toBe(false);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });
});

describe('without a Java runtime', () => {
  it('prints only the hint, no stack trace', async () => {
    const { child, stderr } = startLocal({
      PORT: String(await findFreePort('127.0.0.1')),
      REGISTRY_DATA_DIR: join(workDir, 'no-java'),
      PATH: workDir,
    });
    expect(await exited(child, 30_000)).toBe(1);
    expect(stderr().trim().split('\n').at(-1)).toBe(
      'npm start: DynamoDB Local needs a Java runtime and there is no java on PATH: apt-get install default-jre-headless (or put java on PATH)',
    );
    expect(stderr()).not.toMatch(/\n\s+at |ENOENT/);
  });
});

describe('stopping the npm process', () => {
  it.each(['SIGTERM', 'SIGKILL'] as const)('with %s stops the server and the JVM, and frees every port', async (signal) => {
    const port = await findFreePort('127.0.0.1');
    const dataDir = join(workDir, `stop-${signal}`);
    const { child: npm, stderr } = start('npm', ['start'], { PORT: String(port), REGISTRY_DATA_DIR: dataDir });
    expect(await until(() => /Registry listening/.test(stderr()), 60_000), stderr()).toBe(true);
    const endpoints = JSON.parse(await readFile(join(dataDir, 'local-endpoints.json'), 'utf8')) as {
      dynamoEndpoint: string;
      s3Endpoint: string;
      pid: number;
    };
    const dynamoPort = Number(new URL(endpoints.dynamoEndpoint).port);
    const s3Port = Number(new URL(endpoints.s3Endpoint).port);
    const jvm = Number((await portOwner(dynamoPort))?.match(/^pid (\d+)/)?.[1]);
    expect(jvm).toBeGreaterThan(0);
    expect(await answers(port)).toBe(true);

    npm.kill(signal);
    expect(await until(() => !processIsAlive(endpoints.pid) && !processIsAlive(jvm), 15_000), 'the registry and the JVM end').toBe(true);
    for (const freed of [port, dynamoPort, s3Port]) expect(await answers(freed), `port ${freed}`).toBe(false);
    expect(existsSync(join(dataDir, 'local-endpoints.json'))).toBe(false);
  });
});

describe('a registry process killed outright (kill -9)', () => {
  it('leaves its JVM, which the next start on that data dir stops, saying so', async () => {
    const dataDir = join(workDir, 'killed');
    const first = startLocal({ PORT: String(await findFreePort('127.0.0.1')), REGISTRY_DATA_DIR: dataDir });
    expect(await until(() => /Registry listening/.test(first.stderr()), 60_000), first.stderr()).toBe(true);
    const endpoints = JSON.parse(await readFile(join(dataDir, 'local-endpoints.json'), 'utf8')) as { dynamoEndpoint: string };
    const jvm = Number((await portOwner(Number(new URL(endpoints.dynamoEndpoint).port)))?.match(/^pid (\d+)/)?.[1]);
    first.child.kill('SIGKILL');
    await exited(first.child, 5_000);
    expect(processIsAlive(jvm), 'nothing can stop the JVM when its launcher is killed outright').toBe(true);

    const second = startLocal({ PORT: String(await findFreePort('127.0.0.1')), REGISTRY_DATA_DIR: dataDir });
    expect(await until(() => /Registry listening/.test(second.stderr()), 60_000), second.stderr()).toBe(true);
    expect(second.stderr()).toContain(`stopped DynamoDB Local pid ${jvm}, left running on this data dir by an npm start that was killed (kill -9)`);
    expect(processIsAlive(jvm)).toBe(false);
    second.child.kill('SIGTERM');
    expect(await exited(second.child, 15_000)).toBe(0);
  });
});
