/**
 * The pull-through tests' upstreams: docker-registry open, behind htpasswd and behind the
 * token flow, and the counting proxy's counts and misbehaviours, checked with plain fetch.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCountingProxy, type CountingProxy } from './counting-proxy.js';
import { writeImage, type WrittenImage } from './oci-image.js';
import { startUpstreamRegistry, type UpstreamAuth, type UpstreamRegistry } from './upstream-registry.js';

let workDir: string;
let image: WrittenImage;
const upstreams: Partial<Record<UpstreamAuth, UpstreamRegistry>> = {};

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'upstream-support-'));
  image = await writeImage(join(workDir, 'layout'), { tag: 'v1', layers: [{ sizeBytes: 200_000 }], seed: 'upstream-support' });
  for (const auth of ['none', 'basic', 'token'] as const) {
    const upstream = await startUpstreamRegistry({ dataDir: join(workDir, auth), auth });
    await upstream.push(join(workDir, 'layout'), 'v1', 'library/app');
    upstreams[auth] = upstream;
  }
});

afterAll(async () => {
  await Promise.all(Object.values(upstreams).map((upstream) => upstream.stop()));
  await rm(workDir, { recursive: true, force: true });
});

const manifestAccept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
const sha256 = (bytes: ArrayBuffer) => `sha256:${createHash('sha256').update(Buffer.from(bytes)).digest('hex')}`;

describe('upstream registries', () => {
  it('an open upstream serves what was pushed', async () => {
    const response = await fetch(`${upstreams.none?.url}/v2/library/app/manifests/v1`, { headers: manifestAccept });
    expect(response.status).toBe(200);
    expect(response.headers.get('docker-content-digest')).toBe(image.manifestDigest);
  });

  it('an htpasswd upstream asks for Basic credentials and accepts the right ones only', async () => {
    const upstream = upstreams.basic as UpstreamRegistry;
    const anonymous = await fetch(`${upstream.url}/v2/library/app/manifests/v1`, { headers: manifestAccept });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    const basic = (password: string) => `Basic ${Buffer.from(`${upstream.credentials?.username}:${password}`).toString('base64')}`;
    const wrong = await fetch(`${upstream.url}/v2/library/app/manifests/v1`, { headers: { ...manifestAccept, authorization: basic('wrong') } });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${upstream.url}/v2/library/app/manifests/v1`, {
      headers: { ...manifestAccept, authorization: basic(upstream.credentials?.password ?? '') },
    });
    expect(right.status).toBe(200);
  });

  it('a token upstream challenges with Bearer, and its token server issues tokens the registry accepts', async () => {
    const upstream = upstreams.token as UpstreamRegistry;
    const anonymous = await fetch(`${upstream.url}/v2/library/app/manifests/v1`, { headers: manifestAccept });
    expect(anonymous.status).toBe(401);
    const challenge = anonymous.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/token",service="upstream-test",scope="repository:library\/app:pull"/);
    const realm = /realm="([^"]+)"/.exec(challenge)?.[1] ?? '';
    const tokenUrl = `${realm}?service=upstream-test&scope=${encodeURIComponent('repository:library/app:pull')}`;
    expect((await fetch(tokenUrl)).status).toBe(401);
    const basic = `Basic ${Buffer.from(`${upstream.credentials?.username}:${upstream.credentials?.password}`).toString('base64')}`;
    const tokenAnswer = (await (await fetch(tokenUrl, { headers: { authorization: basic } })).json()) as { token: string; expires_in: number };
    expect(tokenAnswer.expires_in).toBe(60);
    const authorized = await fetch(`${upstream.url}/v2/library/app/manifests/v1`, {
      headers: { ...manifestAccept, authorization: `Bearer ${tokenAnswer.token}` },
    });
    expect(authorized.status).toBe(200);
    expect(upstream.tokenRequests.at(-1)).toBe('repository:library/app:pull');
  });
});

describe('counting proxy', () => {
  let proxy: CountingProxy;
  beforeAll(async () => {
    proxy = await startCountingProxy({ target: upstreams.none?.url ?? '' });
  });
  afterAll(() => proxy.stop());

  const layer = () => image.layerDigests[0] as string;
  const blobUrl = () => `${proxy.url}/v2/library/app/blobs/${layer()}`;

  it('forwards and counts METHOD path without the query; pushes to the upstream port are not counted', async () => {
    proxy.reset();
    expect((await fetch(`${proxy.url}/v2/library/app/manifests/v1?ns=docker.io`, { headers: manifestAccept })).status).toBe(200);
    const blob = await fetch(blobUrl(), { headers: { range: 'bytes=10-' } });
    expect(blob.status).toBe(206);
    await blob.arrayBuffer();
    expect(proxy.count('GET /v2/library/app/manifests/v1')).toBe(1);
    expect(proxy.requests.at(-1)?.range).toBe('bytes=10-');
    expect(proxy.countMatching(/^GET \/v2\/library\/app\/blobs\//)).toBe(1);
  });

  it('answers 503 or 429 on demand, stops and starts on the same port', async () => {
    proxy.failWith(429);
    const limited = await fetch(`${proxy.url}/v2/`);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('1');
    proxy.failWith(503);
    expect((await fetch(`${proxy.url}/v2/`)).status).toBe(503);
    proxy.failWith(undefined);
    await proxy.stop();
    await expect(fetch(`${proxy.url}/v2/`)).rejects.toThrow();
    await proxy.start();
    expect((await fetch(`${proxy.url}/v2/`)).status).toBe(200);
  });

  it('flips a byte of one digest only', async () => {
    proxy.corrupt(layer());
    expect(sha256(await (await fetch(blobUrl())).arrayBuffer())).not.toBe(layer());
    proxy.corrupt(undefined);
    expect(sha256(await (await fetch(blobUrl())).arrayBuffer())).toBe(layer());
  });

  it('redirects blob GETs to /_cdn/ on itself, which serves the bytes (corrupted too when asked)', async () => {
    proxy.redirectBlobs(true);
    proxy.reset();
    const redirect = await fetch(blobUrl(), { redirect: 'manual' });
    expect(redirect.status).toBe(307);
    const location = redirect.headers.get('location') ?? '';
    expect(location).toMatch(new RegExp(`^/_cdn/${layer()}\\?t=`));
    expect(sha256(await (await fetch(`${proxy.url}${location}`)).arrayBuffer())).toBe(layer());
    expect((await fetch(`${proxy.url}/_cdn/${layer()}?t=forged`)).status).toBe(403);
    proxy.corrupt(layer());
    expect(sha256(await (await fetch(blobUrl())).arrayBuffer())).not.toBe(layer());
    proxy.corrupt(undefined);
    proxy.redirectBlobs(false);
    expect(proxy.count(`GET /v2/library/app/blobs/${layer()}`)).toBe(2);
    expect(proxy.count(`GET /_cdn/${layer()}`)).toBe(3);
  });
});
