import { createHash, randomBytes } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import { beforeEach, describe, expect, it } from 'vitest';
import { RegistryError } from '../../../../registry/model/oci/errors.js';
import type { BlobRecord } from '../../../../registry/storage/blob-index.js';
import { BlobObjectStore } from '../../../../registry/storage/blob-object-store.js';
import type { UploadSession } from '../../../../registry/storage/upload-session-store.js';
import {
  DirectUploadService,
  type DirectObjects,
  type DirectSessions,
  type DirectStatus,
  type DirectUploadOptions,
} from '../../../../registry/services/uploads/direct-upload-service.js';
import { ResumableDigest } from '../../../../registry/services/uploads/resumable-digest.js';
import { UploadService } from '../../../../registry/services/uploads/upload-service.js';

const MiB = 1024 * 1024;
const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Sessions with the store's one rule: a save must be based on the stored version. */
class FakeSessions implements DirectSessions {
  readonly items = new Map<string, UploadSession>();
  saves = 0;

  async get(id: string): Promise<UploadSession | undefined> {
    const item = this.items.get(id);
    return item && structuredClone(item);
  }

  async save(session: UploadSession): Promise<boolean> {
    const stored = this.items.get(session.id);
    if (session.version === 1 ? stored !== undefined : stored?.version !== session.version - 1) return false;
    this.saves++;
    this.items.set(session.id, structuredClone(session));
    return true;
  }

  async delete(id: string): Promise<void> {
    this.items.delete(id);
  }
}

/** S3 as far as direct uploads use it: multipart uploads with ETag checks, ETags on objects, ranged reads in 64 KiB chunks. */
class FakeObjects implements DirectObjects {
  readonly objects = new Map<string, { bytes: Buffer; etag: string }>();
  readonly multiparts = new Map<string, { key: string; parts: Map<number, { etag: string; bytes: Buffer }> }>();
  readonly reads: Array<{ start: number; end: number; delivered: number }> = [];
  /** Called for each chunk a ranged read delivers (tests move the clock here). */
  onChunk?: () => void;
  private nextId = 1;

  async startMultipart(key: string): Promise<string> {
    const uploadId = `mpu-${this.nextId++}`;
    this.multiparts.set(uploadId, { key, parts: new Map() });
    return uploadId;
  }

  async presignUploadPart(key: string, uploadId: string, partNumber: number, expiresInSeconds: number): Promise<string> {
    return `https://s3.test/bucket/${key}?uploadId=${uploadId}&partNumber=${partNumber}&X-Amz-Expires=${expiresInSeconds}`;
  }

  /** What a client does with a presigned URL. */
  putPart(url: string, bytes: Buffer): string {
    const parsed = new URL(url);
    const upload = this.multiparts.get(parsed.searchParams.get('uploadId')!);
    if (!upload || `/bucket/${upload.key}` !== parsed.pathname) throw Object.assign(new Error('NoSuchUpload'), { name: 'NoSuchUpload' });
    const etag = `"${createHash('md5').update(bytes).digest('hex')}"`;
    upload.parts.set(Number(parsed.searchParams.get('partNumber')), { etag, bytes });
    return etag;
  }

  async completeMultipart(key: string, uploadId: string, etags: readonly string[]): Promise<void> {
    const upload = this.multiparts.get(uploadId);
    if (!upload || upload.key !== key) throw Object.assign(new Error('NoSuchUpload'), { name: 'NoSuchUpload' });
    const chunks = etags.map((etag, index) => {
      const part = upload.parts.get(index + 1);
      if (!part || part.etag !== etag)
        throw Object.assign(new Error(`part ${index + 1}`), { name: 'InvalidPart', $metadata: { httpStatusCode: 400 } });
      if (index < etags.length - 1 && part.bytes.length < 5 * MiB) throw Object.assign(new Error('small'), { name: 'EntityTooSmall' });
      return part.bytes;
    });
    this.multiparts.delete(uploadId);
    this.objects.set(key, { bytes: Buffer.concat(chunks), etag: `"multipart-${this.nextId++}-${etags.length}"` });
  }

  async abortMultipart(_key: string, uploadId: string): Promise<boolean> {
    return this.multiparts.delete(uploadId);
  }

  async describe(key: string): Promise<{ size: number; etag: string } | undefined> {
    const object = this.objects.get(key);
    return object && { size: object.bytes.length, etag: object.etag };
  }

  async streamRange(key: string, start: number, end: number, ifMatch?: string): Promise<{ body: AsyncIterable<Uint8Array>; etag?: string }> {
    const object = this.objects.get(key);
    if (!object) throw Object.assign(new Error('NoSuchKey'), { name: 'NoSuchKey' });
    if (ifMatch !== undefined && ifMatch !== object.etag) throw Object.assign(new Error('PreconditionFailed'), { name: 'PreconditionFailed' });
    const read = { start, end, delivered: 0 };
    this.reads.push(read);
    const bytes = object.bytes;
    const onChunk = () => this.onChunk?.();
    async function* body() {
      for (let offset = start; offset <= end; offset += 64 * 1024) {
        const chunk = bytes.subarray(offset, Math.min(end + 1, offset + 64 * 1024));
        read.delivered += chunk.length;
        onChunk();
        yield chunk;
      }
    }
    return { body: body(), etag: object.etag };
  }

  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}

describe('direct uploads', () => {
  let sessions: FakeSessions;
  let objects: FakeObjects;
  let recorded: Array<{ repository: string; blob: BlobRecord }>;
  let clock: number;

  /** A new service per request, as separate Lambda instances would be: all state is in the session. */
  const service = (options: Partial<DirectUploadOptions> = {}) =>
    new DirectUploadService(
      sessions,
      objects,
      async (repository, blob) => {
        recorded.push({ repository, blob });
        return blob;
      },
      { sessionTtlSeconds: 3600, now: () => clock, ...options },
    );

  async function openSession(repository = 'team/app', changes: Partial<UploadSession> = {}): Promise<string> {
    const id = crypto.randomUUID();
    const hashState = (await ResumableDigest.start()).save();
    await sessions.save({
      id,
      repository,
      offset: 0,
      hashState,
      partCount: 0,
      tailSize: 0,
      version: 1,
      createdAt: clock,
      expiresAt: clock / 1000 + 3600,
      ...changes,
    });
    return id;
  }

  /** Starts a direct upload of `bytes` and puts every part through its URL; answers the ETags. */
  async function uploadParts(id: string, bytes: Buffer, claimed = sha256(bytes), partSize = 5 * MiB): Promise<string[]> {
    const { plan, urls } = await service().start('team/app', id, { digest: claimed, size: bytes.length, partSize });
    expect(urls.parts).toHaveLength(plan.partCount);
    return urls.parts.map((part) => objects.putPart(part.url, bytes.subarray(part.offset, part.offset + part.size)));
  }

  async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
    const error = await promise.then(
      () => undefined,
      (failed: unknown) => failed,
    );
    if (error === undefined) return undefined;
    if (error instanceof RegistryError) return error.code;
    throw error;
  }

  beforeEach(() => {
    sessions = new FakeSessions();
    objects = new FakeObjects();
    recorded = [];
    clock = 1_700_000_000_000;
  });

  it('starts the multipart upload for the session object key and answers a part plan with URLs naming that key', async () => {
    const id = await openSession();
    const { plan, urls } = await service().start('team/app', id, { digest: sha256(Buffer.from('x')), size: 12 * MiB, partSize: 5 * MiB });
    expect(plan).toEqual({ size: 12 * MiB, partSize: 5 * MiB, partCount: 3 });
    const stored = sessions.items.get(id)!;
    expect(stored.direct).toMatchObject({ phase: 'parts', size: 12 * MiB, partCount: 3, verified: 0 });
    expect(objects.multiparts.get(stored.multipartUploadId!)?.key).toBe(`blobs/${id}`);
    expect(urls.parts.map(({ partNumber, offset, size }) => ({ partNumber, offset, size }))).toEqual([
      { partNumber: 1, offset: 0, size: 5 * MiB },
      { partNumber: 2, offset: 5 * MiB, size: 5 * MiB },
      { partNumber: 3, offset: 10 * MiB, size: 2 * MiB },
    ]);
    for (const part of urls.parts) {
      const url = new URL(part.url);
      expect(url.pathname).toBe(`/bucket/blobs/${id}`);
      expect(url.searchParams.get('uploadId')).toBe(stored.multipartUploadId);
      expect(url.searchParams.get('X-Amz-Expires')).toBe('900');
    }
    expect(urls.expiresAt).toBe(clock + 900_000);
  });

  it('answers the same plan when the start is repeated, and refuses another claim on the session', async () => {
    const id = await openSession();
    const digest = sha256(Buffer.from('x'));
    const first = await service().start('team/app', id, { digest, size: 12 * MiB, partSize: 5 * MiB });
    // The repeat names another part size: the plan in force wins.
    const again = await service().start('team/app', id, { digest, size: 12 * MiB, partSize: 8 * MiB });
    expect(again.plan).toEqual(first.plan);
    expect(objects.multiparts.size).toBe(1);
    expect(await codeOf(service().start('team/app', id, { digest: sha256(Buffer.from('y')), size: 12 * MiB }))).toBe('BLOB_UPLOAD_INVALID');
    expect(await codeOf(service().start('team/app', id, { digest, size: 13 * MiB }))).toBe('BLOB_UPLOAD_INVALID');
  });

  it('refuses other digests than sha256, sessions of other repositories, and sessions that took bytes by PATCH', async () => {
    const id = await openSession();
    const sha512 = `sha512:${'a'.repeat(128)}`;
    expect(await codeOf(service().start('team/app', id, { digest: sha512, size: 10 }))).toBe('DIGEST_INVALID');
    expect(await codeOf(service().start('team/other', id, { digest: sha256(Buffer.from('x')), size: 10 }))).toBe('BLOB_UPLOAD_UNKNOWN');
    expect(await codeOf(service().start('team/app', 'not-a-uuid', { digest: sha256(Buffer.from('x')), size: 10 }))).toBe('BLOB_UPLOAD_UNKNOWN');
    const patched = await openSession('team/app', { offset: 100, tailSize: 100, tailKey: 'uploads/x/tail-y' });
    expect(await codeOf(service().start('team/app', patched, { digest: sha256(Buffer.from('x')), size: 10 }))).toBe('BLOB_UPLOAD_INVALID');
    expect(sessions.items.get(id)!.direct).toBeUndefined();
  });

  it('proves the digest across several polls, saving the SHA-256 state in the session, then records the blob once', async () => {
    const bytes = randomBytes(12 * MiB + 5);
    const id = await openSession();
    const etags = await uploadParts(id, bytes);
    const step = { maxStepBytes: 4 * MiB };

    const statuses: DirectStatus[] = [await service(step).complete('team/app', id, etags)];
    while (statuses.at(-1)!.state === 'verifying') {
      const stored = sessions.items.get(id)!;
      // Between requests, the state is all in the session: how far, and the hash so far.
      expect(stored.direct!.verified).toBe((statuses.at(-1) as { verified: number }).verified);
      expect(stored.direct!.hashState).toBeInstanceOf(Uint8Array);
      expect(stored.leaseHolder).toBeUndefined();
      statuses.push(await service(step).poll('team/app', id));
    }
    expect(statuses.map((status) => (status.state === 'verifying' ? status.verified : status.state))).toEqual([4 * MiB, 8 * MiB, 12 * MiB, 'done']);
    expect(objects.reads.map((read) => read.start)).toEqual([0, 4 * MiB, 8 * MiB, 12 * MiB]);
    expect(recorded).toEqual([{ repository: 'team/app', blob: { digest: sha256(bytes), size: bytes.length, objectKey: `blobs/${id}` } }]);
    expect(sessions.items.has(id)).toBe(false);
    expect(await codeOf(service().poll('team/app', id))).toBe('BLOB_UPLOAD_UNKNOWN');
  });

  it('each request hashes for its time budget only, and carries on from there next time', async () => {
    const bytes = randomBytes(20 * MiB);
    const id = await openSession();
    const etags = await uploadParts(id, bytes);
    // Each 64 KiB chunk "takes" 1 ms: a 100 ms budget is 100 chunks, 6.25 MiB.
    objects.onChunk = () => (clock += 1);
    const budget = { stepBudgetMs: 100 };
    let status = await service(budget).complete('team/app', id, etags, clock);
    const progress: number[] = [];
    while (status.state === 'verifying') {
      progress.push(status.verified);
      status = await service(budget).poll('team/app', id, clock);
    }
    expect(progress).toEqual([100, 200, 300].map((chunks) => chunks * 64 * 1024));
    expect(status).toEqual({ state: 'done', blob: { digest: sha256(bytes), size: bytes.length, objectKey: `blobs/${id}` } });
    // A step stops reading where its budget ends; it never reads a byte twice.
    expect(objects.reads.map((read) => read.delivered).reduce((a, b) => a + b)).toBe(bytes.length);
  });

  it('a completion that used up its budget (S3 slow to assemble) leaves the hashing to the polls', async () => {
    const bytes = randomBytes(6 * MiB);
    const id = await openSession();
    const etags = await uploadParts(id, bytes);
    const startedAt = clock;
    clock += 25_000;
    expect(await service().complete('team/app', id, etags, startedAt)).toEqual({
      state: 'verifying',
      digest: sha256(bytes),
      verified: 0,
      size: bytes.length,
      progressed: false,
    });
    expect(objects.reads).toEqual([]);
    expect(sessions.items.get(id)!.direct!.phase).toBe('verifying');
    expect((await service().poll('team/app', id)).state).toBe('done');
  });

  it('a proof whose recording fails is kept: the next poll records without reading again', async () => {
    const bytes = randomBytes(6 * MiB);
    const id = await openSession();
    const etags = await uploadParts(id, bytes);
    let failures = 1;
    const flaky = new DirectUploadService(
      sessions,
      objects,
      async (repository, blob) => {
        if (failures-- > 0) throw Object.assign(new Error('busy'), { name: 'ProvisionedThroughputExceededException' });
        recorded.push({ repository, blob });
        return blob;
      },
      { sessionTtlSeconds: 3600, now: () => clock },
    );
    await expect(flaky.complete('team/app', id, etags)).rejects.toThrow('busy');
    expect(sessions.items.get(id)).toMatchObject({ leaseHolder: undefined, direct: { phase: 'verifying', verified: bytes.length } });
    const reads = objects.reads.length;
    expect((await flaky.poll('team/app', id)).state).toBe('done');
    expect(objects.reads.length).toBe(reads);
    expect(recorded).toHaveLength(1);
  });

  it('other bytes than claimed: DIGEST_INVALID on the last step, the object deleted, nothing recorded', async () => {
    const claimed = randomBytes(12 * MiB);
    const sent = Buffer.from(claimed);
    sent[7 * MiB] ^= 0xff;
    const id = await openSession();
    const etags = await uploadParts(id, sent, sha256(claimed));
    const step = { maxStepBytes: 5 * MiB };
    let status = await service(step).complete('team/app', id, etags);
    expect(status).toMatchObject({ state: 'verifying', verified: 5 * MiB });
    status = await service(step).poll('team/app', id);
    expect(status).toMatchObject({ state: 'verifying', verified: 10 * MiB });
    expect(await codeOf(service(step).poll('team/app', id))).toBe('DIGEST_INVALID');
    expect(recorded).toEqual([]);
    expect(objects.objects.size).toBe(0);
    expect(sessions.items.has(id)).toBe(false);
    expect(await codeOf(service().poll('team/app', id))).toBe('BLOB_UPLOAD_UNKNOWN');
  });

  it('an object of another size than claimed is refused before any hashing', async () => {
    const bytes = randomBytes(12 * MiB);
    const id = await openSession();
    const { urls } = await service().start('team/app', id, { digest: sha256(bytes), size: bytes.length, partSize: 5 * MiB });
    // The last part carries a byte more than planned.
    const etags = urls.parts.map((part) =>
      objects.putPart(part.url, bytes.subarray(part.offset, part.offset + part.size + (part.partNumber === 3 ? 1 : 0))),
    );
    etags[2] = objects.putPart(urls.parts[2]!.url, Buffer.concat([bytes.subarray(10 * MiB), Buffer.from('!')]));
    expect(await codeOf(service().complete('team/app', id, etags))).toBe('SIZE_INVALID');
    expect(objects.reads).toEqual([]);
    expect(objects.objects.size).toBe(0);
    expect(recorded).toEqual([]);
  });

  it('an object that changes while it is being proven is refused (its ETag is pinned)', async () => {
    const bytes = randomBytes(12 * MiB);
    const id = await openSession();
    const etags = await uploadParts(id, bytes);
    const step = { maxStepBytes: 5 * MiB };
    await service(step).complete('team/app', id, etags);
    const object = objects.objects.get(`blobs/${id}`)!;
    objects.objects.set(`blobs/${id}`, { bytes: object.bytes, etag: '"replaced"' });
    expect(await codeOf(service(step).poll('team/app', id))).toBe('DIGEST_INVALID');
    expect(recorded).toEqual([]);
    expect(objects.objects.size).toBe(0);
  });

  it('completion needs every part with its ETag; S3 refusing a part leaves the session to fix it', async () => {
    const bytes = randomBytes(12 * MiB);
    const id = await openSession();
    const etags = await uploadParts(id, bytes);
    expect(await codeOf(service().complete('team/app', id, etags.slice(0, 2)))).toBe('BLOB_UPLOAD_INVALID');
    expect(await codeOf(service().complete('team/app', id, [etags[0]!, '"wrong"', etags[2]!]))).toBe('BLOB_UPLOAD_INVALID');
    expect(sessions.items.get(id)!.direct!.phase).toBe('parts');
    // Fresh URLs for part 2, and the completion goes through.
    const again = await service().partUrls('team/app', id, '2');
    expect(again.parts.map((part) => part.partNumber)).toEqual([2]);
    const status = await service().complete('team/app', id, etags);
    expect(status.state).toBe('done');
  });

  it('repeating the completion (a lost answer) is a poll', async () => {
    const bytes = randomBytes(12 * MiB);
    const id = await openSession();
    const etags = await uploadParts(id, bytes);
    expect(await service({ maxStepBytes: MiB }).complete('team/app', id, etags)).toMatchObject({ state: 'verifying', verified: MiB });
    expect(await service({ maxStepBytes: MiB }).complete('team/app', id, etags)).toMatchObject({ state: 'verifying', verified: 2 * MiB });
  });

  it('one completion at a time: a retry while S3 assembles waits for it, and polls say so', async () => {
    const bytes = randomBytes(12 * MiB);
    const id = await openSession();
    const etags = await uploadParts(id, bytes);
    const stored = sessions.items.get(id)!;
    // Another request is completing (its lease), e.g. the first PUT, cut off by API Gateway at 30 s.
    sessions.items.set(id, { ...stored, leaseHolder: 'completing', leaseUntil: clock + 60_000, version: stored.version + 1 });
    const waiting = { state: 'verifying', digest: sha256(bytes), verified: 0, size: bytes.length, progressed: false };
    expect(await service().complete('team/app', id, etags)).toEqual(waiting);
    expect(await service().poll('team/app', id)).toEqual(waiting);
    expect(objects.multiparts.size).toBe(1);
    // It died without finishing: once its lease lapses, polls show the parts again and a new completion works.
    clock += 61_000;
    expect((await service().poll('team/app', id)).state).toBe('parts');
    expect((await service().complete('team/app', id, etags)).state).toBe('done');
  });

  it('a poll while another request is proving answers at once, without reading', async () => {
    const bytes = randomBytes(12 * MiB);
    const id = await openSession();
    const etags = await uploadParts(id, bytes);
    await service({ maxStepBytes: MiB }).complete('team/app', id, etags);
    const stored = sessions.items.get(id)!;
    sessions.items.set(id, { ...stored, leaseHolder: 'another', leaseUntil: clock + 60_000, version: stored.version + 1 });
    const readsBefore = objects.reads.length;
    expect(await service().poll('team/app', id)).toEqual({
      state: 'verifying',
      digest: sha256(bytes),
      verified: MiB,
      size: bytes.length,
      progressed: false,
    });
    expect(objects.reads.length).toBe(readsBefore);
    // Once that lease lapses, polling carries on.
    clock += 61_000;
    expect((await service().poll('team/app', id)).state).toBe('done');
  });

  it('URLs: re-requestable for given parts until the parts are complete, never longer-lived than the registry allows', async () => {
    const bytes = randomBytes(12 * MiB);
    const id = await openSession();
    const etags = await uploadParts(id, bytes);
    const short = await service().partUrls('team/app', id, '1,3', 60);
    expect(short.parts.map((part) => [part.partNumber, new URL(part.url).searchParams.get('X-Amz-Expires')])).toEqual([
      [1, '60'],
      [3, '60'],
    ]);
    const capped = await service().partUrls('team/app', id, '2', 7 * 24 * 3600);
    expect(new URL(capped.parts[0]!.url).searchParams.get('X-Amz-Expires')).toBe('900');
    expect(await codeOf(service().partUrls('team/app', id, '4'))).toBe('BLOB_UPLOAD_INVALID');
    expect(await codeOf(service().partUrls('team/other', id, '1'))).toBe('BLOB_UPLOAD_UNKNOWN');
    await service({ maxStepBytes: MiB }).complete('team/app', id, etags);
    expect(await codeOf(service().partUrls('team/app', id, '1'))).toBe('BLOB_UPLOAD_INVALID');
  });

  it('a poll before completion answers the plan', async () => {
    const id = await openSession();
    await service().start('team/app', id, { digest: sha256(Buffer.from('x')), size: 6 * MiB, partSize: 5 * MiB });
    expect(await service().poll('team/app', id)).toEqual({
      state: 'parts',
      digest: sha256(Buffer.from('x')),
      plan: { size: 6 * MiB, partSize: 5 * MiB, partCount: 2 },
    });
  });

  it('a direct session takes no PATCH or PUT of the ordinary upload path', async () => {
    const id = await openSession();
    await service().start('team/app', id, { digest: sha256(Buffer.from('x')), size: 6 * MiB });
    const uploads = new UploadService(sessions as never, {} as never, {} as never, {} as never, 3600);
    const session = await uploads.get('team/app', id);
    expect(await codeOf(uploads.append(session, [Buffer.from('abc')]))).toBe('BLOB_UPLOAD_INVALID');
    expect(await codeOf(uploads.finish(session, [Buffer.from('abc')], sha256(Buffer.from('abc'))))).toBe('BLOB_UPLOAD_INVALID');
    expect(sessions.items.get(id)!.version).toBe(session.version);
  });
});

describe('presigned UploadPart URLs', () => {
  it('name the bucket, the key, the upload id and the part, expire as asked, and carry no checksum parameters', async () => {
    const s3 = new S3Client({
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      requestChecksumCalculation: 'WHEN_REQUIRED',
    });
    const store = new BlobObjectStore(s3, 'registry-blobs');
    const url = new URL(await store.presignUploadPart('blobs/0f3c', 'upload-1', 7, 900));
    expect(url.host).toBe('registry-blobs.s3.us-east-1.amazonaws.com');
    expect(url.pathname).toBe('/blobs/0f3c');
    expect(url.searchParams.get('uploadId')).toBe('upload-1');
    expect(url.searchParams.get('partNumber')).toBe('7');
    expect(url.searchParams.get('x-id')).toBe('UploadPart');
    expect(url.searchParams.get('X-Amz-Expires')).toBe('900');
    // The path and query are signed: in S3, another key, upload or part number is SignatureDoesNotMatch.
    expect(url.searchParams.get('X-Amz-SignedHeaders')).toBe('host');
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    expect([...url.searchParams.keys()].filter((name) => /checksum/i.test(name))).toEqual([]);
  });
});
