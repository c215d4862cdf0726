/**
 * `npm run push` as a user meets it, by spawning the script: the README's example works against
 * `npm start` without extra flags (plain HTTP to loopback, as docker does), a TLS handshake
 * answered in plain HTTP fails at once with one line naming the flag, and the CLI conventions
 * (help with examples, documented exit codes, one-line usage errors).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLoopback } from '../../scripts/push/push.js';
import { useLocalStack } from '../integration/local-stack.js';
import { writeImage } from '../support/oci-image.js';

const CLI = join(import.meta.dirname, '../../scripts/push.ts');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

function runPush(args: string[]): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { encoding: 'utf8', timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr, seconds: (Date.now() - started) / 1000 }),
    );
  });
}

let workDir: string;
beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'push-cli-'));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('which scheme a destination gets', () => {
  it('is plain HTTP for loopback hosts only', () => {
    for (const host of ['127.0.0.1:5000', 'localhost:5000', 'localhost', '[::1]:5000', '127.1.2.3', 'registry.localhost:80']) {
      expect(isLoopback(host), host).toBe(true);
    }
    for (const host of ['registry.example.com', '10.0.0.1:5000', '127.0.0.1.example.com', 'localhost.example.com:5000', '[2001:db8::1]:443']) {
      expect(isLoopback(host), host).toBe(false);
    }
  });
});

describe('npm run push against the local registry', () => {
  const stack = useLocalStack('push-cli');

  it('pushes the README example without --insecure-http', async () => {
    const layout = join(workDir, 'image');
    const image = await writeImage(layout, { tag: 'latest', layers: [{ sizeBytes: 64 * 1024 }], seed: 'push-cli' });
    const run = await runPush([`${layout}:latest`, `127.0.0.1:${stack.registry.port}/team/app:1.0`, '--quiet']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe(image.manifestDigest);
    const manifest = await stack.http.fetch('/v2/team/app/manifests/1.0', { method: 'HEAD' });
    expect(manifest.headers.get('docker-content-digest')).toBe(image.manifestDigest);
  });
});

describe('a TLS handshake answered in plain HTTP', () => {
  let server: Server;
  let port: number;
  beforeAll(async () => {
    server = createServer((_request, response) => response.writeHead(200).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('fails at once, in one line that names --insecure-http, without retrying', async () => {
    const layout = join(workDir, 'tls-image');
    await writeImage(layout, { tag: 'latest', layers: [{ sizeBytes: 1024 }], seed: 'push-cli-tls' });
    const run = await runPush([`${layout}:latest`, `127.0.0.1:${port}/team/app:1.0`, '--tls']);
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split('\n')).toEqual([expect.stringMatching(/plain HTTP.*--insecure-http/)]);
    expect(run.stderr).not.toMatch(/retrying/);
    expect(run.seconds).toBeLessThan(10);
  });

  it('tells a refused connection from a retryable one, at once', async () => {
    const layout = join(workDir, 'tls-image');
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const run = await runPush([`${layout}:latest`, `127.0.0.1:${closedPort}/team/app:1.0`]);
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toMatch(/^push: nothing is listening on 127\.0\.0\.1:\d+: is the registry running \(npm start\)/);
    expect(run.stderr).not.toMatch(/retrying/);
  });
});

describe('CLI conventions', () => {
  it('--help shows examples and the exit codes, on stdout, exit 0', async () => {
    const run = await runPush(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/Examples:\n {2}npm run push -- /);
    expect(run.stdout).toMatch(/Exit codes: 0 pushed, 1 .*, 2 wrong command line/);
  });

  it('a wrong command line is exit 2 with one line of reason and where help is', async () => {
    for (const args of [['only-one-argument'], ['a', 'b', '--no-such-flag'], ['a', 'b', '--tls', '--insecure-http']]) {
      const run = await runPush(args);
      expect(run.code, args.join(' ')).toBe(2);
      const lines = run.stderr.trim().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/^push: /);
      expect(lines[1]).toBe('Run npm run push -- --help for usage.');
    }
  });
});
