/**
 * Pull-through names and manifests (docs/pull-through.md) on the local stack, against Debian's
 * docker-registry on loopback behind the counting proxy: upstreams added with the admin CLI, a
 * real skopeo pull through a prefix (and again with the upstream stopped), `ns=` and the Docker
 * mirror entry, tag TTL and HEAD revalidation, stale serves with Warning, the upstream's 404,
 * read-only cache names, Basic and token upstream auth, and credentials kept out of every log,
 * output, table item and object.
 */
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLogger } from '../../registry/support/logger.js';
import { UPSTREAMS_CACHE_MS } from '../../registry/storage/upstream-store.js';
import { adminCli, runAdminCli } from '../auth/admin-cli.js';
import { createSkopeo } from '../support/clients.js';
import { blobDifferences } from '../support/layout-compare.js';
import { startCountingProxy, type CountingProxy } from '../support/counting-proxy.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';
import { errorCode, sha256 } from '../support/registry-http.js';
import { startUpstreamRegistry, type UpstreamRegistry } from '../support/upstream-registry.js';
import { useLocalStack } from './local-stack.js';

const logLines: string[] = [];
const stack = useLocalStack('pull-through-manifests', { logger: jsonLogger((line) => logLines.push(line)), dockerMirrorPort: 0 });
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';

let open: UpstreamRegistry;
let basic: UpstreamRegistry;
let tokened: UpstreamRegistry;
let hubProxy: CountingProxy;
let flakyProxy: CountingProxy;
const cliOutput: string[] = [];
const images: Record<string, WrittenImage & { layout: string }> = {};

async function image(name: string, seed: string): Promise<WrittenImage & { layout: string }> {
  const layout = join(stack.dataDir, 'layouts', name);
  const written = await writeImage(layout, { tag: 'v1', layers: [{ sizeBytes: 50_000, compression: 'none' }], seed });
  images[name] = { ...written, layout };
  return images[name];
}

async function cli(args: string[], input?: string): Promise<string> {
  const output = await adminCli(stack.dataDir, args, input);
  cliOutput.push(output);
  return output;
}

const manifestGet = (path: string, init: RequestInit = {}) =>
  stack.http.fetch(path, { ...init, headers: { accept: ACCEPT, ...(init.headers as Record<string, string>) } });
const manifestRequests = (proxy: CountingProxy, repository: string) =>
  proxy.requests.filter((request) => request.path.startsWith(`/v2/${repository}/manifests/`));

beforeAll(async () => {
  open = await startUpstreamRegistry({ dataDir: join(stack.dataDir, 'open') });
  basic = await startUpstreamRegistry({ dataDir: join(stack.dataDir, 'basic'), auth: 'basic' });
  tokened = await startUpstreamRegistry({ dataDir: join(stack.dataDir, 'token'), auth: 'token' });
  hubProxy = await startCountingProxy({ target: open.url });
  flakyProxy = await startCountingProxy({ target: open.url });
  await open.push((await image('app', 'app-v1')).layout, 'v1', 'library/app');
  await open.push((await image('ttl', 'ttl-v1')).layout, 'v1', 'library/ttl');
  await open.push((await image('flaky', 'flaky-v1')).layout, 'v1', 'library/flaky');
  await basic.push((await image('private', 'private-v1')).layout, 'v1', 'team/private');
  await tokened.push((await image('tokened', 'tokened-v1')).layout, 'v1', 'team/tokened');
  await cli(['upstream', 'add', 'hub', '--url', hubProxy.url, '--prefix', 'hub', '--docker-hub']);
  await cli(['upstream', 'add', 'ttl', '--url', hubProxy.url, '--prefix', 'ttl', '--tag-ttl', '2', '--ns', 'ttl.example']);
  await cli(['upstream', 'add', 'flaky', '--url', flakyProxy.url, '--prefix', 'cache/flaky', '--tag-ttl', '0', '--ns', 'flaky.example']);
  const { username, password } = basic.credentials!;
  await cli(['upstream', 'add', 'private', '--url', basic.url, '--prefix', 'private', '--username', username, '--password-stdin'], `${password}\n`);
  const token = tokened.credentials!;
  await cli(
    ['upstream', 'add', 'tokened', '--url', tokened.url, '--prefix', 'tokened', '--username', token.username, '--password-stdin'],
    token.password,
  );
}, 120_000);

afterAll(async () => {
  await Promise.all([hubProxy?.stop(), flakyProxy?.stop()]);
  await Promise.all([open?.stop(), basic?.stop(), tokened?.stop()]);
});

describe('upstream add, list', () => {
  it('lists the upstreams with their settings, never a credential', async () => {
    const listed = JSON.parse(await cli(['upstream', 'list', '--json'])) as Array<Record<string, unknown>>;
    const hub = listed.find((upstream) => upstream.name === 'hub')!;
    expect(hub).toMatchObject({
      prefix: 'hub',
      dockerHub: true,
      hosts: expect.arrayContaining(['docker.io']),
      credentials: 'none',
      tagTtlSeconds: 300,
    });
    expect(listed.find((upstream) => upstream.name === 'private')).toMatchObject({ credentials: 'basic' });
    expect(JSON.stringify(listed)).not.toContain(basic.credentials!.password);
  });

  it("refuses a prefix holding the registry's own repositories", async () => {
    await stack.http.pushImage('team/own', 'v1', 'own');
    const refused = await runAdminCli(stack.dataDir, ['upstream', 'add', 'team', '--url', open.url, '--prefix', 'team', '--ns', 'team.example']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('team/own');
  });

  it('refuses a prefix that overlaps another upstream, and a second Docker Hub', async () => {
    const overlap = await runAdminCli(stack.dataDir, ['upstream', 'add', 'other', '--url', open.url, '--prefix', 'hub/sub']);
    expect(overlap.code).toBe(1);
    expect(overlap.stderr).toContain('overlaps upstream hub');
    const secondHub = await runAdminCli(stack.dataDir, ['upstream', 'add', 'other', '--url', open.url, '--prefix', 'other', '--docker-hub']);
    expect(secondHub.code).toBe(1);
    expect(secondHub.stderr).toContain('already the Docker Hub upstream');
  });
});

describe('pulling through a prefix', () => {
  it('skopeo pulls hub/library/app:v1 byte for byte, and again with the upstream stopped', async () => {
    const app = images.app!;
    const first = join(await mkdtemp(join(stack.dataDir, 'pull-')), 'layout');
    const skopeo = await createSkopeo(join(stack.dataDir, 'skopeo-1'));
    await skopeo.copy(`docker://${new URL(stack.registry.url).host}/hub/library/app:v1`, `oci:${first}:v1`, ['--preserve-digests']);
    expect(await blobDifferences(app.layout, first, [app.manifestDigest, app.configDigest, ...app.layerDigests])).toEqual([]);
    const manifest = await stack.http.fetch('/v2/hub/app/manifests/v1', { headers: { accept: ACCEPT } });
    expect(manifest.headers.get('docker-content-digest')).toBe(app.manifestDigest);

    await hubProxy.stop();
    try {
      const second = join(await mkdtemp(join(stack.dataDir, 'pull-')), 'layout');
      const offline = await createSkopeo(join(stack.dataDir, 'skopeo-2'));
      await offline.copy(`docker://${new URL(stack.registry.url).host}/hub/library/app:v1`, `oci:${second}:v1`, ['--preserve-digests']);
      expect(await blobDifferences(app.layout, second, [app.manifestDigest, app.configDigest, ...app.layerDigests])).toEqual([]);
    } finally {
      await hubProxy.start();
    }
  }, 120_000);

  it('by digest: fetched once, then served without asking the upstream', async () => {
    const { manifestDigest, manifest } = images.app!;
    hubProxy.reset();
    for (let pull = 0; pull < 3; pull++) {
      const response = await manifestGet(`/v2/hub/library/app/manifests/${manifestDigest}`);
      expect(response.status).toBe(200);
      expect(Buffer.from(await response.arrayBuffer()).equals(manifest)).toBe(true);
    }
    expect(manifestRequests(hubProxy, 'library/app')).toEqual([]);
  });

  it("an upstream's 404 is a 404 naming the upstream, and nothing is cached", async () => {
    const response = await manifestGet('/v2/hub/library/nothing/manifests/v1');
    expect(response.status).toBe(404);
    const body = (await response.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]).toMatchObject({ code: 'MANIFEST_UNKNOWN', message: expect.stringContaining('upstream hub') });
    expect((await stack.http.fetch('/v2/hub/library/nothing/tags/list')).status).toBe(404);
  });

  it('ten concurrent first pulls of a tag make one upstream manifest GET', async () => {
    const crowd = await image('crowd', 'crowd-v1');
    await open.push(crowd.layout, 'v1', 'library/crowd');
    hubProxy.reset();
    hubProxy.delay(300);
    try {
      const responses = await Promise.all(Array.from({ length: 10 }, () => manifestGet('/v2/hub/library/crowd/manifests/v1')));
      expect(responses.map((response) => response.status)).toEqual(Array(10).fill(200));
      expect(new Set(responses.map((response) => response.headers.get('docker-content-digest')))).toEqual(new Set([crowd.manifestDigest]));
    } finally {
      hubProxy.delay(0);
    }
    expect(hubProxy.count('GET /v2/library/crowd/manifests/v1')).toBe(1);
  });
});

describe('ns= and the Docker mirror entry', () => {
  it('?ns=docker.io reads library/app from the Docker Hub upstream, as hub/library/app', async () => {
    const response = await manifestGet('/v2/library/app/manifests/v1?ns=docker.io');
    expect(response.status).toBe(200);
    expect(response.headers.get('docker-content-digest')).toBe(images.app!.manifestDigest);
    const blob = await stack.http.fetch(`/v2/library/app/blobs/${images.app!.configDigest}?ns=docker.io`);
    expect(blob.status).toBe(307);
  });

  it('?ns= of a host no upstream answers is NAME_UNKNOWN, so containerd tries its next host', async () => {
    const response = await manifestGet('/v2/library/app/manifests/v1?ns=quay.io');
    expect(response.status).toBe(404);
    expect(await errorCode(response)).toBe('NAME_UNKNOWN');
  });

  it('an --ns host selects its upstream', async () => {
    const response = await manifestGet('/v2/library/flaky/manifests/v1?ns=flaky.example');
    expect(response.status).toBe(200);
    expect(response.headers.get('docker-content-digest')).toBe(images.flaky!.manifestDigest);
  });

  it('the mirror entry serves bare Docker Hub names and refuses pushes', async () => {
    const mirror = stack.registry.dockerMirrorUrl!;
    const response = await fetch(`${mirror}/v2/library/app/manifests/v1`, { headers: { accept: ACCEPT } });
    expect(response.status).toBe(200);
    expect(response.headers.get('docker-content-digest')).toBe(images.app!.manifestDigest);
    const single = await fetch(`${mirror}/v2/app/manifests/v1`, { headers: { accept: ACCEPT } });
    expect(single.headers.get('docker-content-digest')).toBe(images.app!.manifestDigest);
    const push = await fetch(`${mirror}/v2/library/app/blobs/uploads/`, { method: 'POST' });
    expect(push.status).toBe(405);
    expect(await errorCode(push)).toBe('UNSUPPORTED');
  });
});

describe('tags: TTL and revalidation', () => {
  it('a moved tag is seen after the TTL and not before; an unchanged one costs one HEAD', async () => {
    const first = await manifestGet('/v2/ttl/library/ttl/manifests/v1');
    expect(first.headers.get('docker-content-digest')).toBe(images.ttl!.manifestDigest);
    const moved = await image('ttl-moved', 'ttl-v2');
    await open.push(moved.layout, 'v1', 'library/ttl');
    hubProxy.reset();
    const soon = await manifestGet('/v2/ttl/library/ttl/manifests/v1');
    expect(soon.headers.get('docker-content-digest')).toBe(images.ttl!.manifestDigest);
    expect(manifestRequests(hubProxy, 'library/ttl')).toEqual([]);

    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const later = await manifestGet('/v2/ttl/library/ttl/manifests/v1');
    expect(later.headers.get('docker-content-digest')).toBe(moved.manifestDigest);
    expect(manifestRequests(hubProxy, 'library/ttl').map((request) => request.method)).toEqual(['HEAD', 'GET']);

    hubProxy.reset();
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const unchanged = await manifestGet('/v2/ttl/library/ttl/manifests/v1');
    expect(unchanged.headers.get('docker-content-digest')).toBe(moved.manifestDigest);
    expect(manifestRequests(hubProxy, 'library/ttl').map((request) => request.method)).toEqual(['HEAD']);
  }, 30_000);
});

describe('the upstream failing', () => {
  it('a cached tag is served with a Warning when the upstream answers 503 or 429; an uncached one is 503 naming it', async () => {
    const cached = await manifestGet('/v2/cache/flaky/library/flaky/manifests/v1');
    expect(cached.status).toBe(200);
    flakyProxy.failWith(429);
    const limited = await manifestGet('/v2/cache/flaky/library/flaky/manifests/v1');
    expect(limited.status).toBe(200);
    expect(limited.headers.get('docker-content-digest')).toBe(images.flaky!.manifestDigest);
    expect(limited.headers.get('warning')).toMatch(/^110 \S+ "stale: upstream flaky .*429/);
    flakyProxy.failWith(503);
    const down = await manifestGet('/v2/cache/flaky/library/flaky/manifests/v1');
    expect(down.status).toBe(200);
    expect(down.headers.get('warning')).toContain('stale');
    const uncached = await manifestGet('/v2/cache/flaky/library/flaky/manifests/other');
    expect(uncached.status).toBe(503);
    const body = (await uncached.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('upstream flaky') });
    flakyProxy.failWith(undefined);
    const events = logLines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.message === 'pull-through');
    expect(events).toContainEqual(expect.objectContaining({ upstream: 'flaky', event: 'stale', PullThroughStaleServes: 1, Upstream: 'flaky' }));
    expect(events).toContainEqual(
      expect.objectContaining({ upstream: 'flaky', event: 'upstreamError', errorKind: 'tooManyRequests', UpstreamErrors: 1 }),
    );
  });

  it('a tag the upstream no longer has is gone here too', async () => {
    const gone = await image('gone', 'gone-v1');
    await open.push(gone.layout, 'v1', 'library/gone');
    expect((await manifestGet('/v2/ttl/library/gone/manifests/v1')).status).toBe(200);
    const deleted = await fetch(`${open.url}/v2/library/gone/manifests/${gone.manifestDigest}`, { method: 'DELETE' });
    expect(deleted.status).toBe(202);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const response = await manifestGet('/v2/ttl/library/gone/manifests/v1');
    expect(response.status).toBe(404);
    expect(await errorCode(response)).toBe('MANIFEST_UNKNOWN');
    const tags = (await (await stack.http.fetch('/v2/ttl/library/gone/tags/list')).json()) as { tags: string[] };
    expect(tags.tags).toEqual([]);
  });
});

describe('cache names are read-only', () => {
  it('pushes, uploads and deletes under a prefix are DENIED naming the upstream', async () => {
    const { manifestDigest, configDigest } = images.app!;
    const attempts = [
      stack.http.fetch('/v2/hub/library/app/manifests/v2', {
        method: 'PUT',
        headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
        body: '{}',
      }),
      stack.http.fetch(`/v2/hub/library/app/manifests/${manifestDigest}`, { method: 'DELETE' }),
      stack.http.fetch(`/v2/hub/library/app/blobs/${configDigest}`, { method: 'DELETE' }),
      stack.http.fetch('/v2/hub/library/app/blobs/uploads/', { method: 'POST' }),
      stack.http.fetch(`/v2/hub/app/blobs/uploads/?digest=${sha256('x')}`, { method: 'POST', body: 'x' }),
    ];
    for (const response of await Promise.all(attempts)) {
      expect(response.status).toBe(403);
      const body = (await response.json()) as { errors: { code: string; message: string }[] };
      expect(body.errors[0]!.code).toBe('DENIED');
      expect(body.errors[0]!.message).toContain('read-only cache of upstream hub');
    }
  });
});

describe('mounting from a cache name', () => {
  it('is allowed, by its short name too', async () => {
    const layer = images.app!.layerDigests[0]!;
    const response = await stack.http.fetch(`/v2/team/copy/blobs/uploads/?mount=${layer}&from=hub/app`, { method: 'POST' });
    expect(response.status).toBe(201);
    expect((await stack.http.fetch(`/v2/team/copy/blobs/${layer}`, { method: 'HEAD' })).status).toBe(200);
  });
});

describe('upstream auth', () => {
  it('a Basic upstream pulls with its credentials', async () => {
    const response = await manifestGet('/v2/private/team/private/manifests/v1');
    expect(response.status).toBe(200);
    expect(response.headers.get('docker-content-digest')).toBe(images.private!.manifestDigest);
    expect((await runAdminCli(stack.dataDir, ['upstream', 'test', 'private', '--image', 'team/private:v1'])).code).toBe(0);
  });

  it('a token upstream: one token request for a whole image pull', async () => {
    tokened.tokenRequests.length = 0;
    const response = await manifestGet('/v2/tokened/team/tokened/manifests/v1');
    expect(response.status).toBe(200);
    const { configDigest, layerDigests } = images.tokened!;
    for (const digest of [configDigest, ...layerDigests]) {
      expect((await stack.http.fetch(`/v2/tokened/team/tokened/blobs/${digest}`)).status).toBe(307);
    }
    expect(tokened.tokenRequests).toEqual(['repository:team/tokened:pull']);
  });

  it('a wrong password: upstream test exits 1, pulls are 404 "upstream refused"', async () => {
    await cli(
      ['upstream', 'add', 'wrong', '--url', basic.url, '--prefix', 'wrong', '--ns', 'wrong.example', '--username', 'puller', '--password-stdin'],
      'not-it',
    );
    // A new upstream is seen within UPSTREAMS_CACHE_MS (5 s): the registry has read the list since.
    await new Promise((resolve) => setTimeout(resolve, UPSTREAMS_CACHE_MS));
    const test = await runAdminCli(stack.dataDir, ['upstream', 'test', 'wrong']);
    expect(test.code).toBe(1);
    expect(test.stderr).toContain('upstream wrong');
    const response = await manifestGet('/v2/wrong/team/private/manifests/v1');
    expect(response.status).toBe(404);
    const body = (await response.json()) as { errors: { message: string }[] };
    expect(body.errors[0]!.message).toContain('upstream wrong refused');
  });
});

describe('credentials', () => {
  it('are kept owner-only and appear in no log, output, table item or object', async () => {
    const dir = join(stack.dataDir, 'upstream-credentials');
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, 'private.json'))).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(join(dir, 'private.json'), 'utf8'))).toEqual(basic.credentials);
    const { username, password } = basic.credentials!;
    const secrets = [password, Buffer.from(`${username}:${password}`).toString('base64'), tokened.credentials!.password];
    const { Items } = await stack.clients.dynamo.send(new ScanCommand({ TableName: stack.registry.config.tableName }));
    const { Contents } = await stack.clients.s3.send(new ListObjectsV2Command({ Bucket: stack.registry.config.bucketName }));
    const everything = [logLines.join('\n'), cliOutput.join('\n'), JSON.stringify(Items), JSON.stringify(Contents)].join('\n');
    expect(logLines.some((line) => line.includes('"upstream request"'))).toBe(true);
    for (const secret of secrets) expect(everything).not.toContain(secret);
  });
});
