/**
 * Uploads survive the registry dying under them (issue 9):
 * - the registry (`npm start`, a child process with its stand-ins) is SIGKILLed during a streamed
 *   PATCH and restarted on the same data: the upload resumes at once from the range it reports,
 *   instead of being locked by the dead request's lease, and finishes with the right digest;
 * - a finish that assembled the object and died before recording the blob is retried with the
 *   same last chunk of over 5 MiB and succeeds (the completed multipart upload takes no part);
 * - a live request keeps its short lease by renewing it, however long its body takes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { UploadSessionStore } from '../../registry/storage/upload-session-store.js';
import { createAwsClients } from '../../registry/storage/aws-clients.js';
import { createServices } from '../../registry/services/services.js';
import { UploadService } from '../../registry/services/uploads/upload-service.js';
import { RegistryError } from '../../registry/model/oci/errors.js';
import { UploadWriter } from '../../registry/services/uploads/upload-writer.js';
import type { BlobIndex } from '../../registry/storage/blob-index.js';
import { LOCAL_CREDENTIALS } from '../../scripts/local/local-credentials.js';
import { findFreePort } from '../../scripts/local/child-processes.js';
import { startLocalRegistry } from '../../scripts/local/local-registry.js';
import { localEndpointsPath, type LocalEndpoints } from '../../scripts/admin/targets.js';
import { RegistryHttp } from '../support/registry-http.js';

const MiB = 1024 * 1024;
const SLOW_TEST_MS = 5 * 60 * 1000;
const ROOT = resolve(import.meta.dirname, '../..');
const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** `npm start` as a process group of its own (the registry and DynamoDB Local), so that one SIGKILL takes both, as a crash would. */
async function startRegistryProcess(dataDir: string, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start-local.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), REGISTRY_DATA_DIR: dataDir },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  await new Promise<void>((resolveStart, reject) => {
    const timer = setTimeout(() => reject(new Error(`the registry did not start within 120 s:\n${output}`)), 120_000);
    const read = (data: Buffer) => {
      output = (output + data.toString()).slice(-8000);
      if (output.includes('Registry listening on')) {
        clearTimeout(timer);
        resolveStart();
      }
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the registry exited (${code ?? signal}) while starting:\n${output}`));
    });
  });
  return child;
}

async function killGroup(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  try {
    process.kill(-child.pid!, signal);
  } catch {
    return;
  }
  await exited;
}

async function until(condition: () => Promise<boolean>, ms = 60_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) return false;
    await new Promise((resolveWait) => setTimeout(resolveWait, 100));
  }
  return true;
}

/** Pulls a blob as clients do (GET, follow the 307) and answers the digest of what came back. */
async function pulledDigest(http: RegistryHttp, name: string, digest: string): Promise<string> {
  const redirect = await http.fetch(`/v2/${name}/blobs/${digest}`);
  expect(redirect.status).toBe(307);
  return sha256(Buffer.from(await (await fetch(redirect.headers.get('location')!)).arrayBuffer()));
}

/** A local registry in this process, and the same registry's services to drive uploads with directly. */
async function inProcessRegistry(prefix: string) {
  const dataDir = await mkdtemp(join(tmpdir(), prefix));
  const registry = await startLocalRegistry({ dataDir, port: 0, quiet: true });
  cleanups.push(async () => {
    await registry.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  const clients = createAwsClients(registry.config, LOCAL_CREDENTIALS);
  return {
    http: new RegistryHttp(registry.url),
    services: createServices(registry.config, clients),
    sessions: new UploadSessionStore(clients.dynamo, registry.config.tableName),
  };
}

describe('a registry killed during an upload', () => {
  it(
    'resumes the upload at once after a restart, from the range it reports, and finishes it with the right digest',
    async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'upload-crash-'));
      const port = await findFreePort('127.0.0.1');
      let child = await startRegistryProcess(dataDir, port);
      cleanups.push(async () => {
        await killGroup(child, 'SIGKILL');
        await rm(dataDir, { recursive: true, force: true });
      });
      const base = `http://127.0.0.1:${port}`;
      const http = new RegistryHttp(base);
      const blob = randomBytes(40 * MiB);
      const firstChunk = 6 * MiB;

      const location = await http.openUpload('crash/app');
      const first = await http.fetch(location, {
        method: 'PATCH',
        headers: { 'Content-Range': `0-${firstChunk - 1}`, 'Content-Type': 'application/octet-stream' },
        body: blob.subarray(0, firstChunk),
      });
      expect(first.status).toBe(202);

      // A streamed PATCH of the rest that sends 20 MiB (more than a part) and then hangs.
      const streaming = httpRequest(`${base}${location}`, {
        method: 'PATCH',
        headers: { Expect: '100-continue', 'Content-Type': 'application/octet-stream' },
      });
      streaming.on('error', () => undefined);
      streaming.once('continue', () => streaming.write(blob.subarray(firstChunk, firstChunk + 20 * MiB)));
      streaming.flushHeaders();

      // The request holds the lease once the registry has it: watch the session item.
      const endpoints = JSON.parse(await readFile(localEndpointsPath(dataDir), 'utf8')) as LocalEndpoints;
      const dynamo = new DynamoDBClient({ region: endpoints.region, endpoint: endpoints.dynamoEndpoint, credentials: LOCAL_CREDENTIALS });
      const sessions = new UploadSessionStore(DynamoDBDocumentClient.from(dynamo), endpoints.tableName);
      const uuid = location.split('/').pop()!;
      expect(await until(async () => (await sessions.get(uuid))?.leaseHolder !== undefined)).toBe(true);
      dynamo.destroy();

      await killGroup(child, 'SIGKILL');
      streaming.destroy();
      child = await startRegistryProcess(dataDir, port);

      const status = await http.fetch(location);
      expect(status.status).toBe(204);
      expect(status.headers.get('range')).toBe(`0-${firstChunk - 1}`);
      const offset = Number(status.headers.get('range')!.split('-')[1]) + 1;

      const resumed = await http.fetch(location, {
        method: 'PATCH',
        headers: { 'Content-Range': `${offset}-${blob.length - 1}`, 'Content-Type': 'application/octet-stream' },
        body: blob.subarray(offset),
      });
      expect(resumed.status).toBe(202);
      const finished = await http.fetch(`${location}?digest=${sha256(blob)}`, { method: 'PUT' });
      expect(finished.status).toBe(201);

      expect(await pulledDigest(http, 'crash/app', sha256(blob))).toBe(sha256(blob));
    },
    SLOW_TEST_MS,
  );
});

describe('a finish that died after assembling the object', () => {
  it(
    'succeeds when retried with the same last chunk of over 5 MiB, and the blob has the right bytes',
    async () => {
      const { http, services, sessions } = await inProcessRegistry('finish-crash-');
      const blob = randomBytes(12 * MiB);
      const lastChunk = 6 * MiB;
      const location = await http.openUpload('finish/app');
      const patched = await http.fetch(location, { method: 'PATCH', body: blob.subarray(0, blob.length - lastChunk) });
      expect(patched.status).toBe(202);

      // The same registry code, whose first attempt dies once the object is assembled: after
      // CompleteMultipartUpload, before the blob is recorded.
      const dying = Object.create(services.blobs, {
        recordNewAndLink: { value: async () => Promise.reject(new Error('the process died here')) },
      }) as BlobIndex;
      const firstAttempt = new UploadService(sessions, new UploadWriter(services.objects, 16 * MiB), dying, services.objects, 3600);
      const uuid = location.split('/').pop()!;
      const session = (await sessions.get(uuid))!;
      await expect(firstAttempt.finish(session, [blob.subarray(blob.length - lastChunk)], sha256(blob))).rejects.toThrow('the process died here');

      const retried = await http.fetch(`${location}?digest=${sha256(blob)}`, {
        method: 'PUT',
        headers: { 'Content-Type': 'application/octet-stream' },
        body: blob.subarray(blob.length - lastChunk),
      });
      expect(retried.status).toBe(201);
      expect(await pulledDigest(http, 'finish/app', sha256(blob))).toBe(sha256(blob));
    },
    SLOW_TEST_MS,
  );
});

describe('a live request', () => {
  it(
    'keeps its short lease for as long as its body takes: a second request meanwhile waits, then gets 416; the first completes',
    async () => {
      const { http, services, sessions } = await inProcessRegistry('lease-live-');
      const uploads = new UploadService(sessions, new UploadWriter(services.objects, 16 * MiB), services.blobs, services.objects, 3600, {
        leaseMs: 2_000,
        renewEveryMs: 400,
      });
      const location = await http.openUpload('lease/app');
      const uuid = location.split('/').pop()!;

      let resume!: () => void;
      const paused = new Promise<void>((resolvePause) => (resume = resolvePause));
      async function* slowBody() {
        yield Buffer.from('first');
        await paused;
        yield Buffer.from('second');
      }
      const first = uploads.append((await sessions.get(uuid))!, slowBody());
      expect(await until(async () => (await sessions.get(uuid))?.leaseHolder !== undefined)).toBe(true);

      // Waits out the lease it found (2 s), then finds it renewed: its holder is alive.
      const second = await uploads.append((await sessions.get(uuid))!, [Buffer.from('other')]).catch((error: unknown) => error);
      expect(second).toBeInstanceOf(RegistryError);
      expect((second as RegistryError).status).toBe(416);

      resume();
      expect((await first).offset).toBe('firstsecond'.length);
      const status = await http.fetch(location);
      expect(status.headers.get('range')).toBe(`0-${'firstsecond'.length - 1}`);
    },
    SLOW_TEST_MS,
  );
});
