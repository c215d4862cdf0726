/**
 * Garbage collection against the local stack (DynamoDB Local, s3rver, the registry over HTTP):
 * what it frees and keeps, uploads and orphan objects, and GC running over and over with a
 * grace period of a couple of seconds while pushes, re-pushes, deletes and pulls go on.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalRegistry, type LocalRegistry } from '../../scripts/local/local-registry.js';
import { LOCAL_CREDENTIALS } from '../../scripts/local/local-credentials.js';
import { createAwsClients, type AwsClients } from '../../registry/storage/aws-clients.js';
import { keys, objectKeys } from '../../registry/storage/keys.js';
import { collectGarbage, type GcOptions, type GcReport, type GcTarget } from '../../registry/services/gc/index.js';
import type { Logger } from '../../registry/support/logger.js';
import { OCI_INDEX, OCI_MANIFEST, RegistryHttp, sha256 } from '../support/registry-http.js';

let dataDir: string;
let registry: LocalRegistry;
let http: RegistryHttp;
let clients: AwsClients;
let target: GcTarget;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'gc-'));
  registry = await startLocalRegistry({ dataDir, port: 0, quiet: true });
  http = new RegistryHttp(registry.url);
  clients = createAwsClients(registry.config, LOCAL_CREDENTIALS);
  target = { dynamo: clients.dynamo, s3: clients.s3, tableName: registry.config.tableName, bucketName: registry.config.bucketName };
});

afterAll(async () => {
  clients?.dynamo.destroy();
  clients?.s3.destroy();
  await registry?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

function gc(options: GcOptions): Promise<GcReport> {
  return collectGarbage(target, { scanSegments: 2, concurrency: 8, ...options });
}

interface Blob {
  digest: string;
  bytes: Buffer;
}

function blobOf(content: string | Buffer): Blob {
  const bytes = Buffer.from(content);
  return { digest: sha256(bytes), bytes };
}

function manifestOf(config: Blob, layers: Blob[], platform?: string): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.bytes.length },
    layers: layers.map((layer) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer.digest, size: layer.bytes.length })),
    ...(platform ? { annotations: { platform } } : {}),
  });
}

/** GET through the 307 to S3: the bytes, or why it failed. */
async function pullBlob(repo: string, digest: string): Promise<Buffer | string> {
  const redirect = await http.fetch(`/v2/${repo}/blobs/${digest}`);
  if (redirect.status !== 307) return `registry answered ${redirect.status}`;
  const direct = await fetch(redirect.headers.get('location')!);
  if (direct.status !== 200) return `S3 answered ${direct.status}`;
  const bytes = Buffer.from(await direct.arrayBuffer());
  return sha256(bytes) === digest ? bytes : 'bytes differ';
}

async function pushBlob(repo: string, blob: Blob): Promise<void> {
  expect(await http.pushBlob(repo, blob.bytes)).toBe(blob.digest);
}

async function objectExists(key: string): Promise<boolean> {
  try {
    await clients.s3.send(new HeadObjectCommand({ Bucket: target.bucketName, Key: key }));
    return true;
  } catch {
    return false;
  }
}

async function blobItem(digest: string) {
  const { Item } = await clients.dynamo.send(new GetCommand({ TableName: target.tableName, Key: keys.blob(digest), ConsistentRead: true }));
  return Item;
}

describe('freeing space', () => {
  it("frees a deleted image's own blobs and keeps a layer another repository's image uses", async () => {
    const shared = blobOf(`shared base layer ${randomBytes(8).toString('hex')}`);
    const oneConfig = blobOf('{"os":"linux","image":"one"}');
    const oneLayer = blobOf(randomBytes(3000));
    const twoConfig = blobOf('{"os":"linux","image":"two"}');
    for (const blob of [shared, oneConfig, oneLayer]) await pushBlob('gc/one', blob);
    for (const blob of [shared, twoConfig]) await pushBlob('gc/two', blob);
    const one = manifestOf(oneConfig, [shared, oneLayer]);
    const two = manifestOf(twoConfig, [shared]);
    expect((await http.putManifest('gc/one', 'v1', one)).status).toBe(201);
    expect((await http.putManifest('gc/two', 'v1', two)).status).toBe(201);
    const oneLayerObject = (await blobItem(oneLayer.digest))!.objectKey as string;

    // Nothing is unreferenced yet.
    expect((await gc({ graceSeconds: 0 })).blobsDeleted).toBe(0);
    expect((await http.fetch(`/v2/gc/one/manifests/${sha256(one)}`, { method: 'DELETE' })).status).toBe(202);
    const dry = await gc({ graceSeconds: 0, dryRun: true });
    expect(dry).toMatchObject({ blobsDeleted: 2, bytesFreed: oneConfig.bytes.length + oneLayer.bytes.length });
    const report = await gc({ graceSeconds: 0 });

    expect(report).toMatchObject({
      blobsDeleted: 2,
      linksDeleted: 2,
      bytesFreed: oneConfig.bytes.length + oneLayer.bytes.length,
      referencesWithoutRecord: 0,
      errors: 0,
    });
    for (const blob of [oneConfig, oneLayer]) {
      expect((await http.fetch(`/v2/gc/one/blobs/${blob.digest}`, { method: 'HEAD' })).status).toBe(404);
      expect(await blobItem(blob.digest)).toBeUndefined();
    }
    expect(await objectExists(oneLayerObject)).toBe(false);
    expect(await pullBlob('gc/two', shared.digest)).toEqual(shared.bytes);
    expect(await pullBlob('gc/two', twoConfig.digest)).toEqual(twoConfig.bytes);
    // The shared layer stays visible where it was pushed: only deleted blobs lose their links.
    expect((await http.fetch(`/v2/gc/one/blobs/${shared.digest}`, { method: 'HEAD' })).status).toBe(200);
    const pulled = await http.fetch('/v2/gc/two/manifests/v1');
    expect(await pulled.text()).toBe(two);
  });
});

describe('uploads and orphan objects', () => {
  it('ends expired sessions and deletes objects nothing names', async () => {
    const location = await http.openUpload('gc/uploads');
    const sessionId = location.split('/').pop()!;
    // Chunks: a part, then a tail (a whole-body PATCH would leave one object, no multipart upload).
    const size = 5 * 1024 * 1024 + 10;
    const first = await http.fetch(location, { method: 'PATCH', body: randomBytes(size), headers: { 'Content-Range': `0-${size - 1}` } });
    expect(first.status).toBe(202);
    const second = await http.fetch(location, { method: 'PATCH', body: randomBytes(100), headers: { 'Content-Range': `${size}-${size + 99}` } });
    expect(second.status).toBe(202);
    const session = (await clients.dynamo.send(new GetCommand({ TableName: target.tableName, Key: keys.uploadSession(sessionId) }))).Item!;
    expect(session.multipartUploadId).toBeDefined();
    expect(session.tailKey).toBeDefined();
    await clients.dynamo.send(
      new UpdateCommand({
        TableName: target.tableName,
        Key: keys.uploadSession(sessionId),
        UpdateExpression: 'SET expiresAt = :past',
        ExpressionAttributeValues: { ':past': Math.floor(Date.now() / 1000) - 60 },
      }),
    );
    const strays = {
      tail: objectKeys.uploadTail('0bad0000-0000-4000-8000-000000000000', 'left-behind'),
      blob: objectKeys.blobData('0bad0000-0000-4000-8000-000000000001'),
      manifest: objectKeys.manifest(sha256('a large manifest nobody names'), 'push'),
    };
    for (const key of Object.values(strays)) {
      await clients.s3.send(new PutObjectCommand({ Bucket: target.bucketName, Key: key, Body: 'stray' }));
    }
    // S3 timestamps are to the second, and GC allows for that.
    await sleep(3_100);

    const report = await gc({ graceSeconds: 0 });

    // A large manifest's object may belong to a push still retrying its transaction: kept for
    // the longest request whatever the grace period (the unit tests delete old ones).
    expect(report).toMatchObject({ orphanManifestObjectsDeleted: 0, errors: 0 });
    // DynamoDB Local applies TTL itself and may remove the expired session before GC scans it;
    // then its tail is an orphan like the stray one (and S3's lifecycle rule aborts the upload).
    expect(report.sessionsExpired + report.orphanTailsDeleted).toBe(2);
    expect(report.multipartUploadsAborted).toBe(report.sessionsExpired);
    expect((await http.fetch(location)).status).toBe(404);
    expect(await objectExists(session.tailKey as string)).toBe(false);
    expect(await objectExists(strays.tail)).toBe(false);
    expect(await objectExists(strays.manifest)).toBe(true);
    // A blob object is deleted once a second run still finds it unnamed.
    expect(await objectExists(strays.blob)).toBe(true);
    expect(report.orphanBlobObjectsPending).toBeGreaterThanOrEqual(1);
    const again = await gc({ graceSeconds: 0 });
    expect(again.orphanBlobObjectsDeleted).toBeGreaterThanOrEqual(1);
    expect(await objectExists(strays.blob)).toBe(false);
  });
});

describe('GC running during pushes', () => {
  const GRACE_SECONDS = 2;
  const PUSH_SECONDS = 20;
  const REPOS = ['gc/alpha', 'gc/beta', 'gc/gamma'];
  const SHARED = Array.from({ length: 6 }, (_, i) => blobOf(`shared layer ${i} ${'x'.repeat(2000 + i)}`));

  interface Pushed {
    repo: string;
    digest: string;
    body: string;
    blobs: Blob[];
    worker: number;
    topLevel: boolean;
    deleted: boolean;
  }

  const pushed: Pushed[] = [];
  const tags = new Map<string, string>();
  const seenBlobs: { repo: string; blob: Blob }[] = [];
  const headThenGetFailures: { repo: string; digest: string; headAt: number; failedBy: number; reason: string }[] = [];
  const claims: { digest: string; claimedAt: number }[] = [];
  const reports: GcReport[] = [];
  const stats = {
    images: 0,
    indexes: 0,
    deletes: 0,
    mounts: 0,
    blobUnknownRetries: 0,
    headChecks: 0,
    headsAnswered404: 0,
    slowPushes: 0,
    maxManifestPutMs: 0,
  };

  const random = (n: number) => Math.floor(Math.random() * n);

  const claimLog: Logger = {
    info(message, fields) {
      if (message === 'gc deleted blob') claims.push({ digest: fields!.digest as string, claimedAt: fields!.claimedAt as number });
    },
    warn(message, fields) {
      if (message === 'gc step failed' && fields?.claimedAt) claims.push({ digest: fields.digest as string, claimedAt: fields.claimedAt as number });
    },
    error() {},
  };

  async function upload(repo: string, blob: Blob): Promise<void> {
    if (SHARED.includes(blob) && Math.random() < 0.5) {
      const from = REPOS[random(REPOS.length)];
      const mount = await http.fetch(`/v2/${repo}/blobs/uploads/?mount=${blob.digest}&from=${from}`, { method: 'POST' });
      if (mount.status === 201) {
        stats.mounts++;
        return;
      }
      expect(mount.status).toBe(202);
      const finish = await http.fetch(`${mount.headers.get('location')}?digest=${blob.digest}`, { method: 'PUT', body: blob.bytes });
      expect(finish.status).toBe(201);
    } else {
      await pushBlob(repo, blob);
    }
    seenBlobs.push({ repo, blob });
  }

  /** PUT; when GC took a blob meanwhile (MANIFEST_BLOB_UNKNOWN), push that blob again and retry. */
  async function putManifest(repo: string, reference: string, body: string, mediaType: string, blobs: Blob[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const started = Date.now();
      const response = await http.putManifest(repo, reference, body, mediaType);
      stats.maxManifestPutMs = Math.max(stats.maxManifestPutMs, Date.now() - started);
      if (response.status === 201) return;
      const error = ((await response.json()) as { errors?: { code: string; detail?: { digest?: string } }[] }).errors?.[0];
      const missing = blobs.find((blob) => blob.digest === error?.detail?.digest);
      if (error?.code !== 'MANIFEST_BLOB_UNKNOWN' || !missing || attempt === 20) {
        throw new Error(`manifest push answered ${response.status} ${JSON.stringify(error)}`);
      }
      stats.blobUnknownRetries++;
      await upload(repo, missing);
    }
  }

  /** Pushes an image under `tag`, or by digest (an index's child) without one. */
  async function pushImage(worker: number, repo: string, tag: string | undefined, seed: string): Promise<Pushed> {
    const config = blobOf(`{"architecture":"amd64","os":"linux","seed":"${seed}"}`);
    const first = SHARED[random(SHARED.length)];
    const second = SHARED.filter((blob) => blob !== first)[random(SHARED.length - 1)];
    const own = blobOf(randomBytes(500 + random(4000)));
    const blobs = [config, first, second, own];
    for (const blob of blobs) await upload(repo, blob);
    if (Math.random() < 0.15) {
      // A slow client: GC may take the blobs before the manifest comes.
      stats.slowPushes++;
      await sleep(GRACE_SECONDS * 1000 + 1500);
    }
    const body = manifestOf(config, [first, second, own], seed);
    await putManifest(repo, tag ?? sha256(body), body, OCI_MANIFEST, blobs);
    const entry = { repo, digest: sha256(body), body, blobs, worker, topLevel: tag !== undefined, deleted: false };
    pushed.push(entry);
    return entry;
  }

  async function pushIndex(worker: number, repo: string, tag: string, seed: string): Promise<void> {
    const children = [];
    for (const platform of ['amd64', 'arm64']) {
      const child = await pushImage(worker, repo, undefined, `${seed}-${platform}`);
      children.push(child);
    }
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: children.map((child, i) => ({
        mediaType: OCI_MANIFEST,
        digest: child.digest,
        size: Buffer.byteLength(child.body),
        platform: { architecture: i === 0 ? 'amd64' : 'arm64', os: 'linux' },
      })),
    });
    await putManifest(repo, tag, body, OCI_INDEX, []);
    pushed.push({ repo, digest: sha256(body), body, blobs: [], worker, topLevel: true, deleted: false });
    tags.set(`${repo}:${tag}`, sha256(body));
    stats.indexes++;
  }

  async function deleteOne(worker: number): Promise<void> {
    const mine = pushed.filter((entry) => entry.worker === worker && entry.topLevel && !entry.deleted);
    if (mine.length === 0) return;
    const victim = mine[random(mine.length)];
    const response = await http.fetch(`/v2/${victim.repo}/manifests/${victim.digest}`, { method: 'DELETE' });
    expect(response.status).toBe(202);
    victim.deleted = true;
    for (const [key, digest] of tags) if (digest === victim.digest && key.startsWith(`${victim.repo}:`)) tags.delete(key);
    stats.deletes++;
  }

  async function pusher(worker: number, until: number): Promise<void> {
    for (let n = 0; Date.now() < until; n++) {
      const repo = REPOS[random(REPOS.length)];
      // Each worker has its own tags, so that which push a tag ends on is known.
      const tag = `w${worker}-t${random(2)}`;
      // The first round pushes a multi-arch index and the third deletes; the rest is chance.
      const roll = n === 0 ? 0.3 : n === 2 ? 0 : Math.random();
      if (roll < 0.2) {
        await deleteOne(worker);
      } else if (roll < 0.4) {
        await pushIndex(worker, repo, tag, `w${worker}-${n}`);
      } else {
        const image = await pushImage(worker, repo, tag, `w${worker}-${n}`);
        tags.set(`${repo}:${tag}`, image.digest);
        stats.images++;
      }
    }
  }

  /** HEAD, and right after a 200, GET through S3: a failure must be explained by a GC claim in between. */
  async function headChecker(until: number): Promise<void> {
    while (Date.now() < until) {
      if (seenBlobs.length === 0) {
        await sleep(50);
        continue;
      }
      const { repo, blob } = seenBlobs[random(seenBlobs.length)];
      const headAt = Date.now();
      const head = await http.fetch(`/v2/${repo}/blobs/${blob.digest}`, { method: 'HEAD' });
      stats.headChecks++;
      if (head.status !== 200) {
        stats.headsAnswered404++;
        continue;
      }
      const pulled = await pullBlob(repo, blob.digest);
      if (typeof pulled === 'string') headThenGetFailures.push({ repo, digest: blob.digest, headAt, failedBy: Date.now(), reason: pulled });
    }
  }

  async function gcLoop(until: number): Promise<void> {
    while (Date.now() < until) {
      reports.push(await gc({ graceSeconds: GRACE_SECONDS, logger: claimLog }));
      await sleep(100);
    }
  }

  it('never breaks an image whose push succeeded, and HEAD never vouches for a blob GC already took', async () => {
    const until = Date.now() + PUSH_SECONDS * 1000;
    await Promise.all([pusher(0, until), pusher(1, until), pusher(2, until), headChecker(until), gcLoop(until)]);

    // A HEAD 200 followed by a failed GET is allowed only if GC claimed the blob in between.
    const unexplained = headThenGetFailures.filter(
      (failure) =>
        !claims.some((claim) => claim.digest === failure.digest && claim.claimedAt >= failure.headAt - 1000 && claim.claimedAt <= failure.failedBy),
    );
    expect(unexplained).toEqual([]);
    expect(reports.reduce((sum, report) => sum + report.errors, 0)).toBe(0);

    // Once quiet, a run with no grace at all takes everything unreferenced, and must break nothing.
    const final = await gc({ graceSeconds: 0, logger: claimLog });
    expect(final).toMatchObject({ referencesWithoutRecord: 0, manifestsWithoutBlobList: 0, errors: 0 });

    for (const entry of pushed) {
      const response = await http.fetch(`/v2/${entry.repo}/manifests/${entry.digest}`);
      if (entry.deleted) {
        expect(response.status).toBe(404);
        continue;
      }
      expect(response.status).toBe(200);
      expect(await response.text()).toBe(entry.body);
    }
    const checked = new Set<string>();
    for (const entry of pushed.filter((candidate) => !candidate.deleted)) {
      for (const blob of entry.blobs) {
        if (checked.has(`${entry.repo}@${blob.digest}`)) continue;
        checked.add(`${entry.repo}@${blob.digest}`);
        const pulled = await pullBlob(entry.repo, blob.digest);
        expect(typeof pulled === 'string' ? `${entry.repo} ${blob.digest}: ${pulled}` : pulled.equals(blob.bytes)).toBe(true);
      }
    }
    for (const [key, digest] of tags) {
      const [repo, tag] = key.split(':');
      const response = await http.fetch(`/v2/${repo}/manifests/${tag}`, { method: 'HEAD' });
      expect(response.headers.get('docker-content-digest')).toBe(digest);
    }

    const deleted = reports.reduce((sum, report) => sum + report.blobsDeleted, 0);
    console.log(
      JSON.stringify({
        ...stats,
        gcRuns: reports.length,
        blobsDeletedDuringPushes: deleted,
        claimsRefused: reports.reduce((sum, report) => sum + report.claimsRefused, 0),
        headThenGetFailuresExplainedByClaims: headThenGetFailures.length,
        finalRunDeleted: final.blobsDeleted,
        manifestsVerified: pushed.filter((entry) => !entry.deleted).length,
        blobsVerified: checked.size,
      }),
    );
    expect(stats.images + stats.indexes).toBeGreaterThanOrEqual(3);
    expect(stats.deletes).toBeGreaterThan(0);
    expect(deleted + final.blobsDeleted).toBeGreaterThan(0);
  });
});
