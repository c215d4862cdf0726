/**
 * What a client can do wrong on the wire, and what the local server and the upload gateway do
 * about it (issue 9): a path with dot segments or a backslash is routed as Lambda would route
 * it; a client that disconnects mid-body is an abort, not a 500; a body that stops arriving is
 * dropped after the idle timeout; the gateway refuses uploads past its cap with 429.
 */
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { startLocalRegistry, type LocalRegistry } from '../../scripts/local/local-registry.js';
import { startApiGatewayEmulator } from '../../scripts/local/api-gateway-emulator.js';
import type { Logger } from '../../registry/support/logger.js';
import { RegistryHttp } from '../support/registry-http.js';

const IDLE_MS = 1500;
/** Far above IDLE_MS: how long a test waits for something that must happen. */
const BOUND_MS = 30_000;

interface LogEntry {
  level: 'info' | 'warn' | 'error';
  message: string;
  fields: Record<string, unknown>;
}

function capturingLogger(entries: LogEntry[]): Logger {
  const at =
    (level: LogEntry['level']) =>
    (message: string, fields: Record<string, unknown> = {}) =>
      entries.push({ level, message, fields });
  return { info: at('info'), warn: at('warn'), error: at('error') };
}

let workDir: string;
let registry: LocalRegistry;
let http: RegistryHttp;
const logs: LogEntry[] = [];

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'misbehave-'));
  registry = await startLocalRegistry({
    dataDir: workDir,
    port: 0,
    logger: capturingLogger(logs),
    bodyIdleTimeoutMs: IDLE_MS,
  });
  http = new RegistryHttp(registry.url);
}, 120_000);

afterAll(async () => {
  await registry?.stop();
  await rm(workDir, { recursive: true, force: true });
});

/** One request with the path exactly as given (fetch and `new URL` would normalise it). */
function rawGet(base: string, path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: hostname, port, path, method: 'GET' }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

/**
 * A request whose body starts and then stops: `started` resolves once the server has the request
 * (it answered `100 Continue`) and the first bytes are sent; `outcome` with the status the server
 * answered, or `closed` when it closed the connection without one.
 */
function stalledRequest(url: string, options: { method: string; headers?: Record<string, string>; first: Buffer | string }) {
  const target = new URL(url);
  let request!: ClientRequest;
  const outcome = new Promise<number | 'closed'>((resolve) => {
    request = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        method: options.method,
        headers: { Expect: '100-continue', 'Content-Type': 'application/octet-stream', ...options.headers },
      },
      (response: IncomingMessage) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      },
    );
    request.on('error', () => resolve('closed'));
    request.on('close', () => resolve('closed'));
  });
  const started = new Promise<void>((resolve) => request.once('continue', () => request.write(options.first, () => resolve())));
  request.flushHeaders();
  return { request, started, outcome };
}

/** The promise's value, or `timeout` after `ms`: bounds a wait without asserting on time. */
async function within<T>(promise: Promise<T>, ms = BOUND_MS): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function until(condition: () => boolean, ms = BOUND_MS): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

describe('paths are routed as Lambda sees them', () => {
  it('does not resolve dot segments or backslashes: /v2/a/../b is not the repository b', async () => {
    await http.pushImage('b', 'v1', 'raw-path');
    expect((await rawGet(registry.url, '/v2/b/tags/list')).status).toBe(200);
    for (const path of ['/v2/a/../b/tags/list', '/v2/b\\..\\b/tags/list', '/v2/a/./b/tags/list']) {
      const answer = await rawGet(registry.url, path);
      expect({ path, status: answer.status }).toEqual({ path, status: 400 });
      expect(JSON.parse(answer.body).errors[0].code).toBe('NAME_INVALID');
    }
  });

  it('hands the function of the API Gateway emulator the path as sent, percent-escapes decoded as an HTTP API does', async () => {
    const seen: APIGatewayProxyEventV2[] = [];
    const api = await startApiGatewayEmulator(async (event) => {
      seen.push(event);
      return { statusCode: 200, body: '' };
    });
    try {
      for (const path of ['/v2/a/../b/tags/list', '/v2/a\\b/tags/list', '/v2/%62/tags/list?n=1&last=%61']) await rawGet(api.url, path);
      expect(seen.map((event) => [event.rawPath, event.requestContext.http.path, event.rawQueryString])).toEqual([
        ['/v2/a/../b/tags/list', '/v2/a/../b/tags/list', ''],
        ['/v2/a\\b/tags/list', '/v2/a\\b/tags/list', ''],
        ['/v2/b/tags/list', '/v2/b/tags/list', 'n=1&last=%61'],
      ]);
    } finally {
      await api.stop();
    }
  });
});

describe('a client that goes away', () => {
  it('is logged as an abort at warn level, not as a 500 error, and the upload can go on at once', async () => {
    const location = await http.openUpload('aborts/app');
    const url = new URL(location, registry.url);
    const stalled = stalledRequest(url.href, { method: 'PATCH', first: Buffer.alloc(64 * 1024, 1) });
    expect(await within(stalled.started)).not.toBe('timeout');
    stalled.request.destroy();
    const isPatch = (entry: LogEntry) => entry.message === 'request' && entry.fields.method === 'PATCH' && entry.fields.path === url.pathname;
    expect(await until(() => logs.some(isPatch))).toBe(true);
    const logged = logs.find(isPatch)!;
    expect(logged.level).toBe('warn');
    expect(logged.fields).toMatchObject({ outcome: 'aborted', Errors: 0 });
    expect(logged.fields.status).not.toBe(500);
    expect(logs.filter((entry) => entry.level === 'error')).toEqual([]);

    const resumed = await http.fetch(location, { method: 'PATCH', body: 'the whole blob' });
    expect(resumed.status).toBe(202);
    expect(resumed.headers.get('range')).toBe('0-13');
  });
});

describe('a body that stops arriving', () => {
  it('is dropped after the idle timeout: a manifest PUT declaring 1000 bytes that sends 5', async () => {
    const stalled = stalledRequest(`${registry.url}/v2/stalls/app/manifests/v1`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Content-Length': '1000' },
      first: '{"sch',
    });
    expect(await within(stalled.started)).not.toBe('timeout');
    expect(await within(stalled.outcome)).toBe(408);
  });

  it('drops every stalled PATCH, and each upload resumes at once from where it stood', async () => {
    const locations = await Promise.all(Array.from({ length: 5 }, () => http.openUpload('stalls/many')));
    const stalled = locations.map((location) => stalledRequest(new URL(location, registry.url).href, { method: 'PATCH', first: 'abc' }));
    for (const request of stalled) expect(await within(request.started)).not.toBe('timeout');
    const outcomes = await Promise.all(stalled.map((request) => within(request.outcome)));
    expect(outcomes.every((outcome) => outcome === 408 || outcome === 'closed')).toBe(true);
    for (const location of locations) {
      const resumed = await http.fetch(location, { method: 'PATCH', body: 'xyz' });
      expect(resumed.status).toBe(202);
    }
  });

  it('keeps a slow body that never pauses for the idle timeout', async () => {
    const location = await http.openUpload('stalls/slow');
    const url = new URL(location, registry.url);
    const slow = stalledRequest(url.href, { method: 'PATCH', first: 'a' });
    expect(await within(slow.started)).not.toBe('timeout');
    // Twice the idle timeout in all, never a pause of more than a fifth of it.
    for (let sent = 1; sent < 10; sent += 1) {
      await new Promise((resolve) => setTimeout(resolve, IDLE_MS / 5));
      slow.request.write('a');
    }
    slow.request.end();
    expect(await within(slow.outcome)).toBe(202);
  });
});

describe('the upload gateway', () => {
  let withGateway: LocalRegistry;
  let gatewayHttp: RegistryHttp;
  beforeAll(async () => {
    withGateway = await startLocalRegistry({
      dataDir: join(workDir, 'gateway'),
      port: 0,
      quiet: true,
      bodyIdleTimeoutMs: IDLE_MS,
      uploadGateway: { maxConcurrentUploads: 2 },
    });
    gatewayHttp = new RegistryHttp(withGateway.url);
  }, 120_000);
  afterAll(async () => {
    await withGateway?.stop();
  });

  it('refuses an upload past its cap with 429 TOOMANYREQUESTS and Retry-After, and takes it once one ends', async () => {
    const locations = await Promise.all(Array.from({ length: 3 }, () => gatewayHttp.openUpload('capped/app')));
    for (const location of locations) expect(location.startsWith(withGateway.uploadGatewayUrl!)).toBe(true);
    const holding = locations.slice(0, 2).map((location) => stalledRequest(location, { method: 'PATCH', first: 'held' }));
    for (const request of holding) expect(await within(request.started)).not.toBe('timeout');

    const refused = await fetch(locations[2]!, { method: 'PATCH', body: 'one too many' });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await refused.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('TOOMANYREQUESTS');

    // The stalled uploads are dropped after the idle timeout; then there is room again.
    const outcomes = await Promise.all(holding.map((request) => within(request.outcome)));
    expect(outcomes.every((outcome) => outcome === 408 || outcome === 'closed')).toBe(true);
    const accepted = await fetch(locations[2]!, { method: 'PATCH', body: 'one too many' });
    expect(accepted.status).toBe(202);
  });
});
