import { createHash } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { collectGarbage, type GcOptions, ORPHAN_CANDIDATES_KEY } from '../../../../registry/services/gc/index.js';
import { digestKey, digestOfKey } from '../../../../registry/services/gc/digest-keys.js';
import { forEachConcurrently } from '../../../../registry/support/concurrency.js';
import { GC_PARTITION, keys, objectKeys } from '../../../../registry/storage/keys.js';
import { epochShardOf } from '../../../../registry/storage/gc-epoch.js';
import type { Logger } from '../../../../registry/support/logger.js';
import { FakeDynamo, FakeS3, evaluateCondition } from './fakes.js';

const NOW = Date.UTC(2025, 0, 1);
const HOUR = 3_600_000;
const LONG_AGO = NOW - 48 * HOUR;
const RECENT = NOW - 60_000;

let clock: number;
let dynamo: FakeDynamo;
let s3: FakeS3;

beforeEach(() => {
  clock = NOW;
  dynamo = new FakeDynamo();
  s3 = new FakeS3(() => clock);
});

function digestOf(name: string): string {
  return `sha256:${createHash('sha256').update(name).digest('hex')}`;
}

function uuid(n: number): string {
  return `${n.toString(16).padStart(8, '0')}-0000-4000-8000-000000000000`;
}

let nextUpload = 1;

/** A blob record, its S3 object and its links, as the registry writes them. */
function seedBlob(
  name: string,
  options: { lastLinkedAt?: number; repos?: string[]; size?: number; deleting?: string; deletingSince?: number; objectKey?: string } = {},
) {
  const digest = digestOf(name);
  const objectKey = options.objectKey ?? objectKeys.blobData(uuid(nextUpload++));
  const size = options.size ?? 100;
  const lastLinkedAt = options.lastLinkedAt ?? LONG_AGO;
  dynamo.put({
    ...keys.blob(digest),
    digest,
    size,
    objectKey,
    createdAt: lastLinkedAt,
    lastLinkedAt,
    ...(options.deleting ? { deleting: options.deleting, deletingSince: options.deletingSince } : {}),
  });
  s3.putObject(objectKey, size, lastLinkedAt);
  for (const repo of options.repos ?? []) dynamo.put({ ...keys.blobLink(repo, digest), digest, size, objectKey, linkedAt: lastLinkedAt });
  return { digest, objectKey, size };
}

function seedManifest(repo: string, name: string, blobDigests: string[], childDigests: string[] = [], tag?: string) {
  const digest = digestOf(name);
  dynamo.put({
    ...keys.manifest(repo, digest),
    digest,
    mediaType: 'x',
    size: 10,
    body: new Uint8Array(10),
    blobDigests,
    childDigests,
    pushedAt: LONG_AGO,
  });
  if (tag) dynamo.put({ ...keys.tag(repo, tag), tag, digest });
  return digest;
}

function target() {
  return { dynamo: dynamo.asClient(), s3: s3.asClient(), tableName: 'registry', bucketName: 'bucket' };
}

function run(options: GcOptions = {}) {
  return collectGarbage(target(), { graceSeconds: 3600, now: () => clock, concurrency: 4, scanSegments: 3, ...options });
}

function capturingLogger(): Logger & { lines: { level: string; message: string; fields?: Record<string, unknown> }[] } {
  const lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  return {
    lines,
    info: (message, fields) => lines.push({ level: 'info', message, fields }),
    warn: (message, fields) => lines.push({ level: 'warn', message, fields }),
    error: (message, fields) => lines.push({ level: 'error', message, fields }),
  };
}

const blobRecord = (digest: string) => dynamo.get(keys.blob(digest).PK, 'BLOB');
const link = (repo: string, digest: string) => dynamo.get(keys.blobLink(repo, digest).PK, keys.blobLink(repo, digest).SK);

describe('mark', () => {
  it("keeps the blobs of a multi-arch index's untagged platform manifests", async () => {
    const amd = [seedBlob('amd config', { repos: ['app'] }), seedBlob('amd layer', { repos: ['app'] })];
    const arm = [seedBlob('arm config', { repos: ['app'] }), seedBlob('arm layer', { repos: ['app'] })];
    const amdManifest = seedManifest(
      'app',
      'amd manifest',
      amd.map((blob) => blob.digest),
    );
    const armManifest = seedManifest(
      'app',
      'arm manifest',
      arm.map((blob) => blob.digest),
    );
    seedManifest('app', 'index', [], [amdManifest, armManifest], 'latest');

    const report = await run();

    for (const blob of [...amd, ...arm]) {
      expect(blobRecord(blob.digest)).toBeDefined();
      expect(link('app', blob.digest)).toBeDefined();
      expect(s3.objects.has(blob.objectKey)).toBe(true);
    }
    expect(report).toMatchObject({ blobsLive: 4, blobCandidates: 0, blobsDeleted: 0, manifests: 3, blobRecords: 4, links: 4, complete: true });
    // Nothing but the run's own epoch.
    expect(dynamo.writes.filter((write) => write.PK !== GC_PARTITION)).toEqual([]);
  });

  it('sweeps nothing when a manifest item has no blobDigests list', async () => {
    const orphan = seedBlob('orphan', { repos: ['app'] });
    dynamo.put({ ...keys.manifest('app', digestOf('legacy')), digest: digestOf('legacy'), body: new Uint8Array(1) });
    const report = await run();
    expect(report.manifestsWithoutBlobList).toBe(1);
    expect(report.blobsDeleted).toBe(0);
    expect(blobRecord(orphan.digest)).toBeDefined();
  });
});

describe('blob sweep', () => {
  it('deletes, after the grace period, a blob only a deleted manifest referenced, with all its links', async () => {
    const shared = seedBlob('shared layer', { repos: ['a', 'b'] });
    const unique = seedBlob('unique layer', { repos: ['a', 'c'], size: 1234 });
    seedManifest('b', 'kept image', [shared.digest]);
    // The manifest of 'a' that referenced both was deleted: only its links remain.

    const report = await run();

    expect(blobRecord(unique.digest)).toBeUndefined();
    expect(link('a', unique.digest)).toBeUndefined();
    expect(link('c', unique.digest)).toBeUndefined();
    expect(s3.objects.has(unique.objectKey)).toBe(false);
    expect(blobRecord(shared.digest)).toBeDefined();
    expect(link('a', shared.digest)).toBeDefined();
    expect(s3.objects.has(shared.objectKey)).toBe(true);
    expect(report).toMatchObject({ blobCandidates: 1, blobsClaimed: 1, blobsDeleted: 1, linksDeleted: 2, bytesFreed: 1234, blobsLive: 1 });
  });

  it('keeps an unreferenced blob linked within the grace period', async () => {
    const fresh = seedBlob('just uploaded', { repos: ['a'], lastLinkedAt: RECENT });
    const report = await run();
    expect(blobRecord(fresh.digest)).toBeDefined();
    expect(link('a', fresh.digest)).toBeDefined();
    expect(report).toMatchObject({ blobsInGrace: 1, blobCandidates: 0, blobsDeleted: 0 });
  });

  it('honours the grace period given: zero takes everything unreferenced', async () => {
    const fresh = seedBlob('just uploaded', { repos: ['a'], lastLinkedAt: NOW - 10 });
    const report = await run({ graceSeconds: 0 });
    expect(blobRecord(fresh.digest)).toBeUndefined();
    expect(report.blobsDeleted).toBe(1);
  });

  it("claims no blob that a manifest push stamped with the run's epoch, even at grace 0 with an old timestamp", async () => {
    const blob = seedBlob('referenced meanwhile', { repos: ['a'] });
    dynamo.before = ({ name, input }) => {
      // A push that read its timestamp before the run began commits after the mark: its
      // transaction checked the epoch the run set, and stamped the blob with it.
      if (name === 'UpdateCommand' && input.Key.PK === keys.blob(blob.digest).PK) {
        const epoch = dynamo.get(GC_PARTITION, keys.gcEpoch(epochShardOf('a')).SK)!.epoch;
        dynamo.put({ ...blobRecord(blob.digest)!, lastLinkedAt: LONG_AGO, touchedEpoch: epoch });
      }
    };
    const report = await run({ graceSeconds: 0 });
    expect(report).toMatchObject({ blobCandidates: 1, claimsRefused: 1, blobsDeleted: 0 });
    expect(blobRecord(blob.digest)).toMatchObject({ objectKey: blob.objectKey });
    // A blob stamped by an earlier run's epoch is no protection against the next run.
    dynamo.before = undefined;
    expect((await run({ graceSeconds: 0 })).blobsDeleted).toBe(1);
  });

  it('deletes nothing of a blob whose claim fails because it was touched meanwhile', async () => {
    const blob = seedBlob('relinked', { repos: ['a'] });
    dynamo.before = ({ name, input }) => {
      // A push links the blob again between the scan and the claim.
      if (name === 'UpdateCommand' && input.Key.PK === keys.blob(blob.digest).PK) {
        dynamo.put({ ...blobRecord(blob.digest)!, lastLinkedAt: clock });
        dynamo.put({ ...keys.blobLink('b', blob.digest), digest: blob.digest, objectKey: blob.objectKey, linkedAt: clock });
      }
    };

    const report = await run();

    expect(report).toMatchObject({ blobCandidates: 1, blobsClaimed: 0, claimsRefused: 1, blobsDeleted: 0, linksDeleted: 0 });
    expect(blobRecord(blob.digest)?.deleting).toBeUndefined();
    expect(link('a', blob.digest)).toBeDefined();
    expect(link('b', blob.digest)).toBeDefined();
    expect(s3.objects.has(blob.objectKey)).toBe(true);
    expect(dynamo.writes.filter((write) => write.op !== 'update')).toEqual([]);
  });

  it('keeps a link to a newer object of the same digest, written by an upload that replaced the claimed record', async () => {
    const blob = seedBlob('re-uploaded', { repos: ['a', 'b'] });
    const newer = objectKeys.blobData(uuid(999));
    dynamo.before = ({ name, input }) => {
      // Right after the claim, an upload of the same bytes replaces the claimed record with its
      // own object (recordBlob's condition allows that) and links it in 'b'.
      if (name === 'DeleteCommand' && input.Key.SK === keys.blobLink('a', blob.digest).SK && input.Key.PK === keys.blobLink('a', blob.digest).PK) {
        dynamo.put({ ...keys.blob(blob.digest), digest: blob.digest, size: 100, objectKey: newer, createdAt: clock, lastLinkedAt: clock });
        dynamo.put({ ...keys.blobLink('b', blob.digest), digest: blob.digest, objectKey: newer, linkedAt: clock });
        s3.putObject(newer, 100);
      }
    };

    const report = await run({ concurrency: 1 });

    expect(link('a', blob.digest)).toBeUndefined();
    expect(link('b', blob.digest)?.objectKey).toBe(newer);
    expect(blobRecord(blob.digest)).toMatchObject({ objectKey: newer });
    expect(blobRecord(blob.digest)?.deleting).toBeUndefined();
    expect(s3.objects.has(blob.objectKey)).toBe(false);
    expect(s3.objects.has(newer)).toBe(true);
    expect(report).toMatchObject({ blobsClaimed: 1, blobsDeleted: 0, blobsReplacedMeanwhile: 1, linksDeleted: 1, linksSkipped: 1 });
  });

  it('deletes a link naming an object its record no longer names, left by a deletion that failed part-way', async () => {
    // A run claimed the blob, deleted the link in 'a' and failed on 'b'; an upload of the same
    // bytes then replaced the record with its own object and linked it in 'a'.
    const blob = seedBlob('half deleted', { repos: ['a', 'b'] });
    const newer = objectKeys.blobData(uuid(998));
    dynamo.put({ ...keys.blob(blob.digest), digest: blob.digest, size: 100, objectKey: newer, createdAt: LONG_AGO, lastLinkedAt: LONG_AGO });
    dynamo.put({ ...keys.blobLink('a', blob.digest), digest: blob.digest, size: 100, objectKey: newer, linkedAt: LONG_AGO });
    s3.putObject(newer, 100);
    seedManifest('a', 'uses it', [blob.digest]);

    const report = await run();

    expect(link('b', blob.digest)).toBeUndefined();
    expect(link('a', blob.digest)?.objectKey).toBe(newer);
    expect(blobRecord(blob.digest)?.objectKey).toBe(newer);
    expect(report).toMatchObject({ staleLinksDeleted: 1, blobsDeleted: 0 });
  });

  it('keeps a link whose record the scan missed but which exists by the time of the delete', async () => {
    const digest = digestOf('uploading');
    const objectKey = objectKeys.blobData(uuid(997));
    dynamo.put({ ...keys.blobLink('a', digest), digest, size: 100, objectKey, linkedAt: RECENT });
    dynamo.before = ({ name, input }) => {
      // The upload's record, written before its link, in a part of the table the scan had read.
      if (name === 'GetCommand' && input.Key.SK === keys.blobLink('a', digest).SK) {
        dynamo.put({ ...keys.blob(digest), digest, size: 100, objectKey, createdAt: RECENT, lastLinkedAt: RECENT });
      }
    };

    const report = await run();

    expect(link('a', digest)?.objectKey).toBe(objectKey);
    expect(report.staleLinksDeleted).toBe(0);
  });

  it('finishes the claim of a run that died long ago, and leaves a recent claim of another run alone', async () => {
    const stale = seedBlob('stale claim', { repos: ['a'], deleting: 'dead-run', deletingSince: NOW - 2 * HOUR });
    const recent = seedBlob('recent claim', { repos: ['a'], deleting: 'running', deletingSince: NOW - 60_000 });
    const report = await run();
    expect(blobRecord(stale.digest)).toBeUndefined();
    expect(link('a', stale.digest)).toBeUndefined();
    expect(s3.objects.has(stale.objectKey)).toBe(false);
    expect(blobRecord(recent.digest)).toMatchObject({ deleting: 'running' });
    expect(s3.objects.has(recent.objectKey)).toBe(true);
    expect(report).toMatchObject({ staleClaimsFinished: 1, blobsDeleted: 1, blobsClaimed: 0 });
  });

  it('leaves the claim in place when a step fails, for a later run to finish', async () => {
    const blob = seedBlob('unlucky', { repos: ['a'] });
    s3.before = ({ name }) => {
      if (name === 'DeleteObjectCommand') throw Object.assign(new Error('boom'), { name: 'InternalError' });
    };
    const logger = capturingLogger();
    const report = await run({ logger });
    expect(report.errors).toBeGreaterThan(0);
    expect(blobRecord(blob.digest)).toMatchObject({ deleting: report.runId });
    expect(logger.lines.some((line) => line.message === 'gc step failed' && line.fields?.digest === blob.digest)).toBe(true);

    s3.before = undefined;
    clock += 2 * HOUR;
    const later = await run();
    expect(later.staleClaimsFinished).toBe(1);
    expect(blobRecord(blob.digest)).toBeUndefined();
  });

  it('logs each deleted blob with the time of its claim', async () => {
    const blob = seedBlob('audited', { repos: ['a'] });
    const logger = capturingLogger();
    await run({ logger });
    const line = logger.lines.find((entry) => entry.message === 'gc deleted blob');
    expect(line?.fields).toMatchObject({ digest: blob.digest, objectKey: blob.objectKey, claimedAt: NOW, outcome: 'deleted', links: 1 });
    expect(logger.lines.at(-1)?.message).toBe('gc finished');
  });
});

describe('dry run', () => {
  it('reports what it would do and writes nothing', async () => {
    seedBlob('garbage', { repos: ['a', 'b'], size: 500 });
    seedBlob('stale', { deleting: 'dead', deletingSince: LONG_AGO });
    const kept = seedBlob('kept');
    seedManifest('a', 'image', [kept.digest]);
    const sessionId = uuid(500);
    dynamo.put({
      ...keys.uploadSession(sessionId),
      expiresAt: Math.floor(LONG_AGO / 1000),
      multipartUploadId: 'mp',
      tailKey: objectKeys.uploadTail(sessionId, 'n'),
    });
    s3.multiparts.set('mp', objectKeys.blobData(sessionId));
    s3.putObject(objectKeys.uploadTail(sessionId, 'n'), 10, LONG_AGO);
    s3.putObject(objectKeys.uploadTail(uuid(501), 'old'), 10, LONG_AGO);
    s3.putObject(objectKeys.blobData(uuid(502)), 10, LONG_AGO);
    s3.putObject(objectKeys.manifest(digestOf('big'), 'push'), 10, LONG_AGO);
    const objectsBefore = new Map(s3.objects);
    const itemsBefore = structuredClone(dynamo.items);

    const report = await run({ dryRun: true });

    expect(dynamo.writes).toEqual([]);
    expect(s3.writes).toEqual([]);
    expect(dynamo.items).toEqual(itemsBefore);
    expect(s3.objects).toEqual(objectsBefore);
    expect(report).toMatchObject({
      dryRun: true,
      blobsClaimed: 1,
      staleClaimsFinished: 1,
      blobsDeleted: 2,
      linksDeleted: 2,
      bytesFreed: 600,
      sessionsExpired: 1,
      orphanTailsDeleted: 2,
      orphanManifestObjectsDeleted: 1,
      orphanBlobObjectsPending: 1,
    });
  });
});

describe('upload sweep', () => {
  it('ends sessions expired for longer than the grace period: item, multipart upload and tail', async () => {
    const expired = uuid(600);
    const justExpired = uuid(601);
    const expiredTail = objectKeys.uploadTail(expired, 'a');
    dynamo.put({ ...keys.uploadSession(expired), expiresAt: Math.floor((NOW - 2 * HOUR) / 1000), multipartUploadId: 'mp-1', tailKey: expiredTail });
    dynamo.put({
      ...keys.uploadSession(justExpired),
      expiresAt: Math.floor((NOW - 60_000) / 1000),
      tailKey: objectKeys.uploadTail(justExpired, 'b'),
    });
    s3.multiparts.set('mp-1', objectKeys.blobData(expired));
    s3.putObject(expiredTail, 10, NOW - 3 * HOUR);
    s3.putObject(objectKeys.uploadTail(justExpired, 'b'), 10, NOW - 2 * HOUR);

    const report = await run();

    expect(dynamo.get(keys.uploadSession(expired).PK, 'UPLOAD')).toBeUndefined();
    expect(s3.multiparts.has('mp-1')).toBe(false);
    expect(s3.objects.has(expiredTail)).toBe(false);
    expect(dynamo.get(keys.uploadSession(justExpired).PK, 'UPLOAD')).toBeDefined();
    expect(s3.objects.has(objectKeys.uploadTail(justExpired, 'b'))).toBe(true);
    expect(report).toMatchObject({ sessionsScanned: 2, sessionsExpired: 1, multipartUploadsAborted: 1 });
  });

  it('does not end a session renewed since the scan', async () => {
    const id = uuid(610);
    dynamo.put({ ...keys.uploadSession(id), expiresAt: Math.floor((NOW - 2 * HOUR) / 1000), multipartUploadId: 'mp-2' });
    s3.multiparts.set('mp-2', objectKeys.blobData(id));
    dynamo.before = ({ name, input }) => {
      if (name === 'DeleteCommand' && input.Key.PK === keys.uploadSession(id).PK) {
        dynamo.put({ ...dynamo.get(input.Key.PK, 'UPLOAD')!, expiresAt: Math.floor(NOW / 1000) + 3600 });
      }
    };
    const report = await run();
    expect(dynamo.get(keys.uploadSession(id).PK, 'UPLOAD')).toBeDefined();
    expect(s3.multiparts.has('mp-2')).toBe(true);
    expect(report.sessionsExpired).toBe(0);
  });

  it("deletes old tails that are not their live session's current tail, and keeps young ones", async () => {
    const live = uuid(620);
    const current = objectKeys.uploadTail(live, 'current');
    dynamo.put({ ...keys.uploadSession(live), expiresAt: Math.floor(NOW / 1000) + 3600, tailKey: current });
    s3.putObject(current, 10, LONG_AGO);
    s3.putObject(objectKeys.uploadTail(live, 'replaced'), 10, LONG_AGO);
    s3.putObject(objectKeys.uploadTail(live, 'being-written'), 10, RECENT);
    s3.putObject(objectKeys.uploadTail(uuid(621), 'session-gone'), 10, LONG_AGO);
    s3.putObject(objectKeys.uploadTail(uuid(622), 'session-gone-young'), 10, RECENT);

    const report = await run();

    expect([...s3.objects.keys()].sort()).toEqual(
      [current, objectKeys.uploadTail(live, 'being-written'), objectKeys.uploadTail(uuid(622), 'session-gone-young')].sort(),
    );
    expect(report).toMatchObject({ orphanTailsDeleted: 2, orphanObjectsDeleted: 2, orphanBytesFreed: 20 });
  });
});

describe('orphan objects', () => {
  it('deletes a blobs/ object that no record names and no session owns only when a second run confirms it', async () => {
    const named = seedBlob('named');
    const orphan = objectKeys.blobData(uuid(700));
    const owned = objectKeys.blobData(uuid(701));
    const young = objectKeys.blobData(uuid(702));
    seedManifest('a', 'image', [named.digest]);
    s3.putObject(orphan, 77, LONG_AGO);
    s3.putObject(owned, 10, LONG_AGO);
    s3.putObject(young, 10, RECENT);
    dynamo.put({ ...keys.uploadSession(uuid(701)), expiresAt: Math.floor(NOW / 1000) + 3600 });

    const first = await run();
    expect(first).toMatchObject({ orphanBlobObjectsDeleted: 0, orphanBlobObjectsPending: 1 });
    expect(s3.objects.has(orphan)).toBe(true);
    expect(JSON.parse(s3.objects.get(ORPHAN_CANDIDATES_KEY)!.body!).keys).toEqual([orphan]);

    clock += HOUR;
    const second = await run();
    // The young object has grown old enough meanwhile: a first sighting, so it waits for the next run.
    expect(second).toMatchObject({ orphanBlobObjectsDeleted: 1, orphanBlobObjectsPending: 1, orphanBytesFreed: 77 });
    expect(s3.objects.has(orphan)).toBe(false);
    expect(s3.objects.has(owned)).toBe(true);
    expect(s3.objects.has(young)).toBe(true);
    expect(s3.objects.has(named.objectKey)).toBe(true);
  });

  it('treats direct/ objects of the front door like blobs/ objects: kept while recorded or their session lives, else deleted when confirmed', async () => {
    const recorded = seedBlob('direct-recorded', { objectKey: objectKeys.directUpload(digestOf('direct-recorded'), uuid(720)), repos: ['a'] });
    seedManifest('a', 'direct-image', [recorded.digest]);
    const orphan = objectKeys.directUpload(digestOf('direct-orphan'), uuid(721));
    const pending = objectKeys.directUpload(digestOf('direct-pending'), uuid(722));
    s3.putObject(orphan, 55, LONG_AGO);
    s3.putObject(pending, 10, LONG_AGO);
    // Not yet recorded, its session alive: the S3 event or a request will record it.
    dynamo.put({ ...keys.uploadSession(uuid(722)), expiresAt: Math.floor(NOW / 1000) + 3600 });

    expect(await run()).toMatchObject({ orphanBlobObjectsDeleted: 0, orphanBlobObjectsPending: 1 });
    clock += HOUR;
    expect(await run()).toMatchObject({ orphanBlobObjectsDeleted: 1, orphanBytesFreed: 55 });
    expect(s3.objects.has(orphan)).toBe(false);
    expect(s3.objects.has(pending)).toBe(true);
    expect(s3.objects.has(recorded.objectKey)).toBe(true);
  });

  it("keeps a small whole-body PATCH's blobs/<session>-<nonce> object while its session lives, and deletes it, confirmed, once the session is gone unrecorded", async () => {
    const live = objectKeys.sessionBlob(uuid(730), uuid(731));
    const abandoned = objectKeys.sessionBlob(uuid(732), uuid(733));
    s3.putObject(live, 20, LONG_AGO);
    s3.putObject(abandoned, 30, LONG_AGO);
    dynamo.put({ ...keys.uploadSession(uuid(730)), expiresAt: Math.floor(NOW / 1000) + 3600, tailKey: live });

    expect(await run()).toMatchObject({ orphanBlobObjectsDeleted: 0, orphanBlobObjectsPending: 1 });
    clock += HOUR;
    expect(await run()).toMatchObject({ orphanBlobObjectsDeleted: 1, orphanBytesFreed: 30 });
    expect(s3.objects.has(abandoned)).toBe(false);
    expect(s3.objects.has(live)).toBe(true);
  });

  it('keeps a candidate that a record names by the second run (an upload finishing during the first scan)', async () => {
    const sessionId = uuid(710);
    const objectKey = objectKeys.blobData(sessionId);
    s3.putObject(objectKey, 10, LONG_AGO);
    await run();
    expect(JSON.parse(s3.objects.get(ORPHAN_CANDIDATES_KEY)!.body!).keys).toEqual([objectKey]);
    // The finish recorded the blob after the record's part of the table was scanned.
    const digest = digestOf('finished late');
    dynamo.put({ ...keys.blob(digest), digest, size: 10, objectKey, createdAt: NOW, lastLinkedAt: NOW });
    seedManifest('a', 'image', [digest]);
    clock += HOUR;
    const second = await run();
    expect(second.orphanBlobObjectsDeleted).toBe(0);
    expect(s3.objects.has(objectKey)).toBe(true);
  });

  it('deletes large-manifest objects no manifest names, after the grace period', async () => {
    const named = objectKeys.manifest(digestOf('named'), 'push');
    const orphan = objectKeys.manifest(digestOf('orphan'), 'push');
    const young = objectKeys.manifest(digestOf('young'), 'push');
    dynamo.put({ ...keys.manifest('a', digestOf('named')), digest: digestOf('named'), objectKey: named, blobDigests: [] });
    for (const key of [named, orphan]) s3.putObject(key, 300_000, LONG_AGO);
    s3.putObject(young, 300_000, RECENT);
    const report = await run();
    expect(s3.objects.has(named)).toBe(true);
    expect(s3.objects.has(orphan)).toBe(false);
    expect(s3.objects.has(young)).toBe(true);
    expect(report.orphanManifestObjectsDeleted).toBe(1);
  });

  it('keeps a large-manifest object younger than the longest request even at grace 0: its push may still be retrying', async () => {
    const inFlight = objectKeys.manifest(digestOf('in flight'), 'push');
    const stale = objectKeys.manifest(digestOf('stale'), 'push');
    s3.putObject(inFlight, 300_000, NOW - 10 * 60_000);
    s3.putObject(stale, 300_000, NOW - 20 * 60_000);
    const report = await run({ graceSeconds: 0 });
    expect(s3.objects.has(inFlight)).toBe(true);
    expect(s3.objects.has(stale)).toBe(false);
    expect(report.orphanManifestObjectsDeleted).toBe(1);
  });

  it('checks a large-manifest object again before deleting it: a push may have just rewritten it', async () => {
    const key = objectKeys.manifest(digestOf('pushed again'), 'push');
    s3.putObject(key, 300_000, LONG_AGO);
    s3.before = ({ name, input }) => {
      if (name === 'HeadObjectCommand' && input.Key === key) s3.putObject(key, 300_000, clock);
    };
    const report = await run();
    expect(s3.objects.has(key)).toBe(true);
    expect(report.orphanManifestObjectsDeleted).toBe(0);
  });
});

describe('deadline', () => {
  it('sweeps nothing when the mark cannot finish in time', async () => {
    const garbage = seedBlob('garbage', { repos: ['a'] });
    for (let i = 0; i < 20; i++) seedBlob(`filler ${i}`, { lastLinkedAt: RECENT });
    let calls = 0;
    // Each look at the clock moves it on; the deadline falls during the scan.
    const report = await run({ now: () => NOW + 1000 * calls++, deadline: NOW + 5_000 });
    expect(report).toMatchObject({ complete: false, stoppedIn: 'mark', blobsClaimed: 0 });
    expect(blobRecord(garbage.digest)).toBeDefined();
  });

  it('stops claiming when the deadline passes during the sweep, and the next run goes on', async () => {
    const garbage = Array.from({ length: 10 }, (_, i) => seedBlob(`garbage ${i}`));
    dynamo.before = ({ name, input }) => {
      // The first claim (not the run's epoch update) takes us past the deadline.
      if (name === 'UpdateCommand' && input.Key.PK !== GC_PARTITION) clock = NOW + 1;
    };
    const first = await run({ deadline: NOW + 1, concurrency: 1 });
    expect(first).toMatchObject({ complete: false, stoppedIn: 'blobs', blobsClaimed: 1, blobsDeleted: 1 });
    dynamo.before = undefined;
    const second = await run();
    expect(second).toMatchObject({ complete: true, blobsDeleted: 9 });
    for (const blob of garbage) expect(blobRecord(blob.digest)).toBeUndefined();
  });
});

describe('helpers', () => {
  it('packs sha256 digests into short map keys and back', () => {
    const digest = digestOf('x');
    expect(digestKey(digest)).toHaveLength(33);
    expect(digestOfKey(digestKey(digest))).toBe(digest);
    const other = `sha512:${'a'.repeat(128)}`;
    expect(digestOfKey(digestKey(other))).toBe(other);
  });

  it('runs work with bounded concurrency and stops when asked', async () => {
    let inFlight = 0;
    let peak = 0;
    const done: number[] = [];
    const { stopped } = await forEachConcurrently(
      Array.from({ length: 20 }, (_, i) => i),
      3,
      async (i) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 1));
        done.push(i);
        inFlight--;
      },
      () => done.length >= 10,
    );
    expect(peak).toBe(3);
    expect(stopped).toBe(true);
    expect(done.length).toBeLessThan(20);
  });

  it('evaluates the condition expressions GC sends as DynamoDB does', () => {
    const item = { PK: 'p', objectKey: 'k', lastLinkedAt: 5 };
    const values = { ':objectKey': 'k', ':cutoff': 10 };
    const claim =
      'attribute_exists(PK) AND attribute_not_exists(deleting) AND objectKey = :objectKey AND ' +
      '(lastLinkedAt < :cutoff OR (attribute_not_exists(lastLinkedAt) AND createdAt < :cutoff))';
    expect(evaluateCondition(claim, item, {}, values)).toBe(true);
    expect(evaluateCondition(claim, { ...item, deleting: 'r' }, {}, values)).toBe(false);
    expect(evaluateCondition(claim, { ...item, lastLinkedAt: 10 }, {}, values)).toBe(false);
    expect(evaluateCondition(claim, undefined, {}, values)).toBe(false);
  });
});

describe('settings of a scheduled run', () => {
  it('are read from the environment', async () => {
    const { gcSettingsFromEnv } = await import('../../../../registry/services/gc/settings.js');
    expect(gcSettingsFromEnv({})).toEqual({
      graceSeconds: 3600,
      dryRun: false,
      scanSegments: undefined,
      concurrency: undefined,
      deadlineMarginSeconds: 60,
    });
    expect(
      gcSettingsFromEnv({
        GC_GRACE_SECONDS: '0',
        GC_DRY_RUN: 'true',
        GC_SCAN_SEGMENTS: '16',
        GC_CONCURRENCY: '64',
        GC_DEADLINE_MARGIN_SECONDS: '90',
      }),
    ).toEqual({
      graceSeconds: 0,
      dryRun: true,
      scanSegments: 16,
      concurrency: 64,
      deadlineMarginSeconds: 90,
    });
    expect(() => gcSettingsFromEnv({ GC_GRACE_SECONDS: '-1' })).toThrow(/GC_GRACE_SECONDS/);
    expect(() => gcSettingsFromEnv({ GC_SCAN_SEGMENTS: '0' })).toThrow(/GC_SCAN_SEGMENTS/);
  });
});
