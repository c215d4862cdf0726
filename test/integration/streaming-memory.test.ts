import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';

/**
 * A 1 GiB blob in one streamed PATCH, as docker and skopeo send it, must flow into S3 with
 * bounded memory. The registry runs as its own process (`npm start`'s entry point) so that
 * its peak resident memory can be read from /proc.
 */
const GiB = 1024 * 1024 * 1024;
const CHUNK = 1024 * 1024;
/** Node, the SDK and s3rver take ~150 MiB at rest; a buffered 1 GiB body could not fit under this. */
const PEAK_RSS_LIMIT_MIB = 400;

let server: ChildProcess;
let dataDir: string;
let baseUrl: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'streaming-'));
  server = spawn(process.execPath, ['--import', 'tsx', 'scripts/start-local.ts'], {
    env: { ...process.env, PORT: '0', REGISTRY_DATA_DIR: dataDir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  baseUrl = await new Promise<string>((resolve, reject) => {
    let output = '';
    server.stderr!.on('data', (data: Buffer) => {
      output += data.toString();
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) resolve(match[1]!);
    });
    server.on('exit', (code) => reject(new Error(`registry exited with ${code}: ${output}`)));
  });
});

afterAll(async () => {
  server?.kill('SIGINT');
  if (server && server.exitCode === null) await new Promise((resolve) => server.once('exit', resolve));
  await rm(dataDir, { recursive: true, force: true });
});

function chunkNumber(index: number): Buffer {
  const chunk = Buffer.alloc(CHUNK, index % 251);
  chunk.writeUInt32LE(index, 0);
  return chunk;
}

/** PATCHes `size` bytes with chunked transfer encoding, like containers/image does. */
function streamPatch(url: string, size: number, hash: ReturnType<typeof createHash>): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { method: 'PATCH', headers: { 'Content-Type': 'application/octet-stream' } }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    outgoing.on('error', reject);
    let index = 0;
    const writeMore = () => {
      while (index * CHUNK < size) {
        const chunk = chunkNumber(index++);
        hash.update(chunk);
        if (!outgoing.write(chunk)) return void outgoing.once('drain', writeMore);
      }
      outgoing.end();
    };
    writeMore();
  });
}

async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

it('streams a 1 GiB PATCH into S3 with bounded memory and serves it back byte for byte', async () => {
  const opened = await fetch(`${baseUrl}/v2/big/layer/blobs/uploads/`, { method: 'POST' });
  const location = opened.headers.get('location')!;
  const hash = createHash('sha256');
  expect(await streamPatch(`${baseUrl}${location}`, GiB, hash)).toBe(202);
  const digest = `sha256:${hash.digest('hex')}`;
  const put = await fetch(`${baseUrl}${location}?digest=${digest}`, { method: 'PUT' });
  expect(put.status).toBe(201);

  const peak = await peakRssMiB(server.pid!);
  expect(peak).toBeLessThan(PEAK_RSS_LIMIT_MIB);

  const head = await fetch(`${baseUrl}/v2/big/layer/blobs/${digest}`, { method: 'HEAD' });
  expect(head.headers.get('content-length')).toBe(String(GiB));
  const redirect = await fetch(`${baseUrl}/v2/big/layer/blobs/${digest}`, { redirect: 'manual' });
  const download = await fetch(redirect.headers.get('location')!);
  const served = createHash('sha256');
  for await (const chunk of download.body!) served.update(chunk);
  expect(`sha256:${served.digest('hex')}`).toBe(digest);
});
