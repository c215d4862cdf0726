import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CacheTarget, Upstream } from '../../../../registry/model/pull-through/upstream.js';
import { UpstreamError } from '../../../../registry/model/pull-through/upstream-error.js';
import { HttpUpstreamClient } from '../../../../registry/services/pull-through/upstream-client.js';
import { UpstreamCredentials } from '../../../../registry/storage/upstream-credentials.js';
import { jsonLogger } from '../../../../registry/support/logger.js';

/** A fake upstream: Bearer (token server on /token) or Basic, serving one manifest, counting what it is asked. */
const MANIFEST = Buffer.from(
  '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},"layers":[]}',
);
const DIGEST = `sha256:${createHash('sha256').update(MANIFEST).digest('hex')}`;
/** A digest the fake serves MANIFEST for: bytes that do not hash to it. */
const LIE = `sha256:${'1'.repeat(64)}`;
const PASSWORD = 'pässword-not-to-be-logged';
const seen: { method: string; path: string; authorization?: string }[] = [];
let mode: 'bearer' | 'basic' = 'bearer';
let validTokens = new Set<string>();
let issued = 0;
let status: number | undefined;
let server: Server;
let url: string;

function handle(request: IncomingMessage) {
  const path = (request.url ?? '').split('?')[0]!;
  seen.push({ method: request.method!, path, authorization: request.headers.authorization });
  if (path === '/token') {
    issued++;
    const token = `token-${issued}`;
    validTokens.add(token);
    return {
      status: 200,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, expires_in: 60, issued_at: new Date().toISOString() }),
    };
  }
  if (status) return { status, headers: { 'retry-after': '7' }, body: '' };
  const authorization = request.headers.authorization ?? '';
  const ok =
    mode === 'basic'
      ? authorization === new UpstreamCredentials('me', PASSWORD).basicAuthorization()
      : validTokens.has(authorization.replace(/^Bearer /, ''));
  if (!ok) {
    const challenge = mode === 'basic' ? 'Basic realm="fake"' : `Bearer realm="${url}/token",service="fake",scope="repository:library/app:pull"`;
    return { status: 401, headers: { 'www-authenticate': challenge }, body: '' };
  }
  if (path === '/v2/library/app/manifests/v1' || path === `/v2/library/app/manifests/${DIGEST}` || path === `/v2/library/app/manifests/${LIE}`) {
    return {
      status: 200,
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': DIGEST },
      body: MANIFEST,
    };
  }
  return { status: 404, headers: {}, body: '' };
}

beforeAll(async () => {
  server = createServer((request, response) => {
    const answer = handle(request);
    response.writeHead(answer.status, answer.headers).end(request.method === 'HEAD' ? undefined : answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  seen.length = 0;
  validTokens = new Set();
  issued = 0;
  status = undefined;
  mode = 'bearer';
});

function target(credentials: 'none' | 'basic' = 'none'): CacheTarget {
  const upstream: Upstream = {
    name: 'fake',
    url,
    prefix: 'f',
    hosts: [],
    dockerHub: false,
    tagTtlSeconds: 0,
    credentials,
    credentialsVersion: 1,
    createdAt: '',
    updatedAt: '',
  };
  return { upstream, upstreamPath: 'library/app' };
}

function client(clock = { now: Date.now() }, lines: string[] = []) {
  return new HttpUpstreamClient({
    credentials: async () => new UpstreamCredentials('me', PASSWORD),
    logger: jsonLogger((line) => lines.push(line)),
    now: () => clock.now,
  });
}

describe('the Docker token flow', () => {
  it('asks for a token once and reuses it until shortly before it expires', async () => {
    const clock = { now: Date.now() };
    const upstream = client(clock);
    expect((await upstream.getManifest(target(), 'v1')).digest).toBe(DIGEST);
    expect((await upstream.headManifest(target(), 'v1')).digest).toBe(DIGEST);
    expect(await upstream.getManifest(target(), DIGEST)).toMatchObject({ digest: DIGEST });
    expect(issued).toBe(1);
    clock.now += 50_000; // 60 s tokens are dropped 15 s early
    await upstream.headManifest(target(), 'v1');
    expect(issued).toBe(2);
  });

  it('a token the upstream no longer takes is dropped and replaced once', async () => {
    const upstream = client();
    await upstream.headManifest(target(), 'v1');
    validTokens.clear();
    await upstream.headManifest(target(), 'v1');
    expect(issued).toBe(2);
  });

  it('sends the credentials to the token endpoint with Basic, never as a Bearer', async () => {
    await client().headManifest(target('basic'), 'v1');
    const tokenRequest = seen.find((request) => request.path === '/token')!;
    expect(tokenRequest.authorization).toBe(new UpstreamCredentials('me', PASSWORD).basicAuthorization());
  });
});

describe('Basic upstreams', () => {
  it('answers the challenge with the credentials, then sends them at once', async () => {
    mode = 'basic';
    const upstream = client();
    await upstream.headManifest(target('basic'), 'v1');
    await upstream.headManifest(target('basic'), 'v1');
    expect(seen.map((request) => request.authorization !== undefined)).toEqual([false, true, true]);
  });

  it('without credentials a Basic challenge is refused', async () => {
    mode = 'basic';
    const error = await client()
      .headManifest(target('none'), 'v1')
      .catch((failure: unknown) => failure);
    expect(error).toBeInstanceOf(UpstreamError);
    expect((error as UpstreamError).kind).toBe('refused');
  });
});

describe('failures', () => {
  it('429 carries Retry-After; 5xx opens the circuit so the next request is not sent', async () => {
    const upstream = client();
    status = 429;
    expect(await upstream.headManifest(target(), 'v1').catch((error: UpstreamError) => [error.kind, error.retryAfterSeconds])).toEqual([
      'tooManyRequests',
      7,
    ]);
    status = 503;
    expect(await upstream.headManifest(target(), 'v1').catch((error: UpstreamError) => error.kind)).toBe('unavailable');
    const before = seen.length;
    status = undefined;
    expect(await upstream.headManifest(target(), 'v1').catch((error: UpstreamError) => error.kind)).toBe('unavailable');
    expect(seen.length).toBe(before);
  });

  it('a manifest whose bytes do not hash to the digest asked for is corrupt', async () => {
    const error = await client()
      .getManifest(target(), LIE)
      .catch((failure: UpstreamError) => failure);
    expect(error).toMatchObject({ kind: 'corrupt', upstream: 'fake' });
    expect(
      await client()
        .getManifest(target(), 'v2')
        .catch((failure: UpstreamError) => failure.kind),
    ).toBe('notFound');
  });

  it('logs method, path, status and time, never a token, a query or a credential', async () => {
    const lines: string[] = [];
    await client(undefined, lines).getManifest(target('basic'), 'v1');
    const log = lines.join('\n');
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(log).toContain('"path":"/v2/library/app/manifests/v1"');
    for (const secret of [PASSWORD, 'token-1', 'scope=', Buffer.from(`me:${PASSWORD}`).toString('base64')]) expect(log).not.toContain(secret);
  });
});
