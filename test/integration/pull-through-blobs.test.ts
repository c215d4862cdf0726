/**
 * Pull-through blobs (docs/pull-through.md, "Blobs") on the local stack, against Debian's
 * docker-registry behind the counting proxy: the first pull copies into S3 (or hands the
 * upstream's redirect on while the copier copies), concurrent first pulls make one upstream
 * fetch, wrong bytes are refused with nothing cached, and a blob too slow for the wait is
 * answered 429 while the copier resumes it with a Range request.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { ListObjectsV2Command, GetObjectCommand } from '@aws-sdk/client-s3';
import { DeleteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { runMaintenance } from '../../registry/services/maintenance/run-maintenance.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../registry/app.js';
import { RegistryError } from '../../registry/model/oci/errors.js';
import type { CacheTarget, Upstream } from '../../registry/model/pull-through/upstream.js';
import { keys } from '../../registry/storage/keys.js';
import { startCountingProxy, type CountingProxy } from '../support/counting-proxy.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';
import { createSkopeo } from '../support/clients.js';
import { blobDifferences, imageBlobs } from '../support/layout-compare.js';
import { sha256 } from '../support/registry-http.js';
import { startUpstreamRegistry, type UpstreamRegistry } from '../support/upstream-registry.js';
import { useLocalStack } from './local-stack.js';

const stack = useLocalStack('pull-through-blobs');
let upstream: UpstreamRegistry;
let proxy: CountingProxy;
let app: App;
let slowApp: App;
let cache: CacheTarget;
const images: Record<string, WrittenImage> = {};
/** What the registry logged (a failed background copy says why here). */
const warnings: string[] = [];
const MIB = 1024 * 1024;

beforeAll(async () => {
  upstream = await startUpstreamRegistry({ dataDir: join(stack.dataDir, 'upstream') });
  proxy = await startCountingProxy({ target: upstream.url });
  const specs = {
    small: 300_000,
    crowd: 2 * MIB,
    bad: 1 * MIB,
    redirect: 6 * MIB,
    large: 40 * MIB,
    app: 3 * MIB,
    cdn: 2 * MIB,
    old: 300_000,
    fresh: 300_000,
  };
  for (const [name, size] of Object.entries(specs)) {
    const layout = join(stack.dataDir, 'layouts', name);
    images[name] = await writeImage(layout, { tag: 'v1', layers: [{ sizeBytes: size, compression: 'none' }], seed: `pull-through-${name}` });
    await upstream.push(layout, 'v1', `library/${name}`);
  }
  const now = new Date().toISOString();
  const hub: Upstream = {
    name: 'hub',
    url: proxy.url,
    prefix: 'hub',
    hosts: ['127.0.0.1'],
    dockerHub: false,
    tagTtlSeconds: 300,
    credentials: 'none',
    credentialsVersion: 0,
    createdAt: now,
    updatedAt: now,
  };
  cache = { upstream: hub, upstreamPath: 'library/app' };
  const remember = (message: string, fields?: Record<string, unknown>) =>
    warnings.push(`${new Date().toISOString()} ${message} ${JSON.stringify(fields)}`);
  const logger = { info: remember, warn: remember, error: remember };
  app = createApp(stack.registry.config, stack.clients, logger);
  await app.services.pullThrough.upstreams.put(hub, { replace: true });
  slowApp = createApp({ ...stack.registry.config, blobCopy: { waitMs: 500 } }, stack.clients, logger);
});

afterAll(async () => {
  await proxy?.stop();
  await upstream?.stop();
});

const layerOf = (name: string) => images[name]?.layerDigests[0] as string;
const targetOf = (name: string): CacheTarget => ({ ...cache, upstreamPath: `library/${name}` });

async function objectDigest(key: string): Promise<string> {
  const { Body } = await stack.clients.s3.send(new GetObjectCommand({ Bucket: stack.registry.config.bucketName, Key: key }));
  const hash = createHash('sha256');
  for await (const chunk of Body as AsyncIterable<Uint8Array>) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

async function blobObjectKeys(): Promise<string[]> {
  const { Contents } = await stack.clients.s3.send(new ListObjectsV2Command({ Bucket: stack.registry.config.bucketName, Prefix: 'blobs/' }));
  return (Contents ?? []).map((object) => object.Key as string);
}

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out; the registry logged:\n${warnings.join('\n')}\nthe proxy saw:\n${JSON.stringify(proxy.requests)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function refusalOf(promise: Promise<unknown>): Promise<RegistryError> {
  const error = await promise.then(
    () => undefined,
    (failed: unknown) => failed,
  );
  if (!(error instanceof RegistryError)) throw error instanceof Error ? error : new Error('it succeeded');
  return error;
}

describe('a streaming upstream: copied into S3 first', () => {
  it('the first GET copies the blob, verified, and later GETs ask the upstream nothing', async () => {
    const digest = layerOf('small');
    proxy.reset();
    const first = await app.services.pullThrough.blobs.get(targetOf('small'), 'hub/library/small', digest);
    expect(first.kind).toBe('stored');
    if (first.kind !== 'stored') return;
    expect(await objectDigest(first.blob.objectKey)).toBe(digest);
    expect(await app.services.blobs.getLink('hub/library/small', digest)).toEqual(first.blob);
    expect(await app.services.blobs.getBlob(digest)).toEqual(first.blob);
    expect(proxy.count(`GET /v2/library/small/blobs/${digest}`)).toBe(1);
    await app.services.pullThrough.blobs.get(targetOf('small'), 'hub/library/small', digest);
    expect(proxy.count(`GET /v2/library/small/blobs/${digest}`)).toBe(1);
  });

  it('ten concurrent first pulls make one upstream fetch, and all get the blob', async () => {
    const digest = layerOf('crowd');
    proxy.reset();
    proxy.delay(300);
    const results = await Promise.all(
      Array.from({ length: 10 }, () => app.services.pullThrough.blobs.get(targetOf('crowd'), 'hub/library/crowd', digest)),
    );
    proxy.delay(0);
    expect(results.map((result) => result.kind)).toEqual(Array(10).fill('stored'));
    expect(proxy.count(`GET /v2/library/crowd/blobs/${digest}`)).toBe(1);
  });

  it('wrong bytes from the upstream: 502 DIGEST_INVALID, nothing recorded, no object left, no refetch; a fixed upstream works', async () => {
    const digest = layerOf('bad');
    const before = await blobObjectKeys();
    proxy.reset();
    proxy.corrupt(digest);
    const refusal = await refusalOf(app.services.pullThrough.blobs.get(targetOf('bad'), 'hub/library/bad', digest));
    expect(refusal.code).toBe('DIGEST_INVALID');
    expect(refusal.status).toBe(502);
    expect(refusal.message).toMatch(new RegExp(`^upstream hub served bytes of sha256:[0-9a-f]{64} for ${digest}; nothing was cached`));
    expect(await app.services.blobs.getBlob(digest)).toBeUndefined();
    expect(await app.services.blobs.getLink('hub/library/bad', digest)).toBeUndefined();
    expect(await blobObjectKeys()).toEqual(before);
    // Retries inside the failure window are refused without asking the upstream again.
    expect((await refusalOf(app.services.pullThrough.blobs.get(targetOf('bad'), 'hub/library/bad', digest))).code).toBe('DIGEST_INVALID');
    expect(proxy.count(`GET /v2/library/bad/blobs/${digest}`)).toBe(1);

    proxy.corrupt(undefined);
    // The failure window (5 minutes) over: the lease item lapses.
    await stack.clients.dynamo.send(new DeleteCommand({ TableName: stack.registry.config.tableName, Key: keys.blobPullLease(digest) }));
    const fixed = await app.services.pullThrough.blobs.get(targetOf('bad'), 'hub/library/bad', digest);
    expect(fixed.kind === 'stored' && (await objectDigest(fixed.blob.objectKey))).toBe(digest);
  });

  it('a blob slower than the wait: 429 with Retry-After, the copier resumes with Range, then the blob is there', async () => {
    const digest = layerOf('large');
    proxy.reset();
    proxy.throttle(24 * MIB);
    const refusal = await refusalOf(slowApp.services.pullThrough.blobs.get(targetOf('large'), 'hub/library/large', digest));
    expect(refusal.code).toBe('TOOMANYREQUESTS');
    expect(refusal.retryAfterSeconds).toBe(5);
    expect(refusal.message).toMatch(new RegExp(`^copying ${digest} from upstream hub \\(\\d+ of 41 MiB\\); retry$`));
    // A retry meanwhile waits and answers 429 again, without another upstream fetch.
    const again = await refusalOf(slowApp.services.pullThrough.blobs.get(targetOf('large'), 'hub/library/large', digest));
    expect(again.code).toBe('TOOMANYREQUESTS');
    const linked = await until(() => app.services.blobs.getLink('hub/library/large', digest), 120_000);
    proxy.throttle(undefined);
    expect(await objectDigest(linked.objectKey)).toBe(digest);
    const fetches = proxy.requests.filter((request) => request.method === 'GET' && request.path === `/v2/library/large/blobs/${digest}`);
    expect(fetches.length).toBe(2);
    expect(fetches[0]?.range).toBeUndefined();
    expect(fetches[1]?.range).toMatch(/^bytes=\d+-$/);
    const done = await slowApp.services.pullThrough.blobs.get(targetOf('large'), 'hub/library/large', digest);
    expect(done.kind).toBe('stored');
  });
});

describe('a redirecting upstream (as Docker Hub and GHCR): the redirect is handed on, the copier copies', () => {
  it('answers the upstream redirect at once, followers get it without an upstream request, and the copier stores the blob', async () => {
    const digest = layerOf('redirect');
    proxy.reset();
    proxy.redirectBlobs(true);
    try {
      const first = await app.services.pullThrough.blobs.get(targetOf('redirect'), 'hub/library/redirect', digest);
      expect(first).toEqual({ kind: 'redirect', location: expect.stringMatching(new RegExp(`^${proxy.url}/_cdn/${digest}\\?t=`)) });
      const followers = await Promise.all(
        Array.from({ length: 5 }, () => app.services.pullThrough.blobs.get(targetOf('redirect'), 'hub/library/redirect', digest)),
      );
      expect(followers.every((follower) => follower.kind === 'redirect' || follower.kind === 'stored')).toBe(true);
      const linked = await until(() => app.services.blobs.getLink('hub/library/redirect', digest));
      expect(await objectDigest(linked.objectKey)).toBe(digest);
      // The winner's GET, and the copier's (which follows the redirect to the CDN path).
      expect(proxy.count(`GET /v2/library/redirect/blobs/${digest}`)).toBe(2);
      expect(proxy.count(`GET /_cdn/${digest}`)).toBe(1);
    } finally {
      proxy.redirectBlobs(false);
    }
  });
});

describe('HEAD in a cache repository', () => {
  it('a miss asks the upstream and caches nothing; a blob the registry holds is proven and linked', async () => {
    const digest = layerOf('crowd');
    const answer = await app.services.pullThrough.blobs.head(targetOf('crowd'), 'hub/other/crowd', digest);
    expect(answer.digest).toBe(digest);
    // The registry holds the bytes (from hub/library/crowd) and the upstream serves them to this path too.
    expect(await app.services.blobs.getLink('hub/other/crowd', digest)).toBeDefined();
    const missing = await refusalOf(app.services.pullThrough.blobs.head(targetOf('crowd'), 'hub/library/crowd', `sha256:${'0'.repeat(64)}`));
    expect(missing.code).toBe('BLOB_UNKNOWN');
  });
});

describe('through the registry: raw HTTP and skopeo', () => {
  // The layers are uncompressed: without it skopeo would compress them into the layout.
  const PRESERVE = ['--preserve-digests'];
  const host = () => new URL(stack.registry.url).host;

  it('GET of a blob never pulled: 307 to S3 once copied, with the right bytes; HEAD of another caches nothing', async () => {
    const digest = images.app?.configDigest as string;
    proxy.reset();
    const response = await stack.http.fetch(`/v2/hub/library/app/blobs/${digest}`);
    expect(response.status).toBe(307);
    expect(response.headers.get('docker-content-digest')).toBe(digest);
    const location = response.headers.get('location') ?? '';
    expect(location.startsWith(stack.registry.config.s3Endpoint ?? 'none')).toBe(true);
    expect(sha256(new Uint8Array(await (await fetch(location)).arrayBuffer()))).toBe(digest);
    expect(proxy.count(`GET /v2/library/app/blobs/${digest}`)).toBe(1);

    const layer = layerOf('app');
    const head = await stack.http.fetch(`/v2/hub/library/app/blobs/${layer}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('docker-content-digest')).toBe(layer);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(3 * MIB);
    expect(await app.services.blobs.getBlob(layer)).toBeUndefined();
  });

  it('skopeo pulls an image through the prefix byte for byte, and again with the upstream stopped', async () => {
    const skopeo = await createSkopeo(join(stack.dataDir, 'skopeo'));
    const pulled = join(stack.dataDir, 'pulled-app');
    await skopeo.copy(`docker://${host()}/hub/library/app:v1`, `oci:${pulled}:v1`, PRESERVE);
    expect(await blobDifferences(join(stack.dataDir, 'layouts', 'app'), pulled, imageBlobs(images.app as WrittenImage))).toEqual([]);
    await proxy.stop();
    try {
      const offline = join(stack.dataDir, 'pulled-app-offline');
      await skopeo.copy(`docker://${host()}/hub/library/app:v1`, `oci:${offline}:v1`, PRESERVE);
      expect(await blobDifferences(join(stack.dataDir, 'layouts', 'app'), offline, imageBlobs(images.app as WrittenImage))).toEqual([]);
    } finally {
      await proxy.start();
    }
  });

  it('a redirecting upstream: skopeo follows the redirect the registry hands on, and the copier stores the blob for later pulls', async () => {
    const skopeo = await createSkopeo(join(stack.dataDir, 'skopeo'));
    const pulled = join(stack.dataDir, 'pulled-cdn');
    const layer = layerOf('cdn');
    proxy.reset();
    proxy.redirectBlobs(true);
    try {
      await skopeo.copy(`docker://${host()}/hub/library/cdn:v1`, `oci:${pulled}:v1`, PRESERVE);
      expect(await blobDifferences(join(stack.dataDir, 'layouts', 'cdn'), pulled, imageBlobs(images.cdn as WrittenImage))).toEqual([]);
      // skopeo fetched the layer from the CDN path itself; the copier fetched it once more.
      await until(() => app.services.blobs.getLink('hub/library/cdn', layer));
      expect(proxy.count(`GET /_cdn/${layer}`)).toBe(2);
    } finally {
      proxy.redirectBlobs(false);
    }
    const later = await stack.http.fetch(`/v2/hub/library/cdn/blobs/${layer}`);
    expect(later.status).toBe(307);
    expect(later.headers.get('location')?.startsWith(stack.registry.config.s3Endpoint ?? 'none')).toBe(true);
  });
});

// Last: its maintenance run (GC with no grace) frees every blob no manifest references.
describe('--keep-days: cached images not pulled for that long expire in the maintenance run', () => {
  it('expires the old image (tag, manifest, then its blobs), keeps the one pulled recently', async () => {
    const skopeo = await createSkopeo(join(stack.dataDir, 'skopeo'));
    const host = new URL(stack.registry.url).host;
    for (const name of ['old', 'fresh']) {
      await skopeo.copy(`docker://${host}/hub/library/${name}:v1`, `oci:${join(stack.dataDir, `pulled-${name}`)}:v1`, ['--preserve-digests']);
    }
    const { tableName } = stack.registry.config;
    const old = images.old as WrittenImage;
    const monthAgo = Date.now() - 30 * 24 * 3600 * 1000;
    const monthAgoDay = Math.floor(monthAgo / (24 * 3600 * 1000));
    const stamp = (key: Record<string, string>, time: string) =>
      stack.clients.dynamo.send(
        new UpdateCommand({
          TableName: tableName,
          Key: key,
          UpdateExpression: `SET pulledAt = :day, ${time} = :at`,
          ConditionExpression: 'attribute_exists(PK)',
          ExpressionAttributeValues: { ':day': monthAgoDay, ':at': monthAgo },
        }),
      );
    await stamp(keys.tag('hub/library/old', 'v1'), 'updatedAt');
    await stamp(keys.manifest('hub/library/old', old.manifestDigest), 'pushedAt');
    const hub = (await app.services.pullThrough.upstreams.get('hub')) as Upstream;
    await app.services.pullThrough.upstreams.put({ ...hub, keepDays: 7 }, { replace: true });

    const settings = { graceSeconds: 0, dryRun: false, deadlineMarginSeconds: 0 };
    const report = await runMaintenance(stack.registry.config, stack.clients, app.services, settings, Date.now() + 120_000, app.logger);
    expect(report.cacheExpiry).toMatchObject({ tagsExpired: 1, manifestsExpired: 1, dryRun: false });
    expect(report.cacheExpiry.repositories).toBeGreaterThanOrEqual(2);

    expect(await app.services.manifests.resolveTag('hub/library/old', 'v1')).toBeUndefined();
    expect(await app.services.manifests.describeManifest('hub/library/old', old.manifestDigest)).toBeUndefined();
    expect(await app.services.blobs.getBlob(layerOf('old'))).toBeUndefined();
    const fresh = images.fresh as WrittenImage;
    expect(await app.services.manifests.resolveTag('hub/library/fresh', 'v1')).toBe(fresh.manifestDigest);
    expect(await app.services.blobs.getBlob(layerOf('fresh'))).toBeDefined();
    await app.services.pullThrough.upstreams.put(hub, { replace: true });
  });
});
