import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobObjectStore } from '../../../../registry/storage/blob-object-store.js';
import type { UploadSession } from '../../../../registry/storage/upload-session-store.js';
import { MIN_PART_SIZE, UploadWriter, type AssembledBlob } from '../../../../registry/services/uploads/upload-writer.js';

const MiB = 1024 * 1024;

type Call =
  | { op: 'putBytes'; key: string; size: number }
  | { op: 'getBytes'; key: string }
  | { op: 'delete'; key: string }
  | { op: 'copy'; key: string }
  | { op: 'startMultipart'; key: string; uploadId: string }
  | { op: 'uploadPart'; key: string; uploadId: string; partNumber: number; size: number }
  | { op: 'completeMultipart'; key: string; uploadId: string; etags: string[] }
  | { op: 'listParts'; key: string; uploadId: string }
  | { op: 'abortMultipart'; key: string; uploadId: string };

interface Multipart {
  key: string;
  parts: Map<number, { etag: string; bytes: Uint8Array }>;
}

/** An in-memory S3 with the rules that matter here: part sizes, ETags, missing keys. */
class FakeObjectStore {
  readonly objects = new Map<string, Uint8Array>();
  readonly multiparts = new Map<string, Multipart>();
  readonly calls: Call[] = [];
  private nextId = 1;
  /** Makes an uploadPart fail: answers an error to reject with, or undefined to succeed. */
  failPart?: (partNumber: number) => Error | undefined;

  async putBytes(key: string, body: Uint8Array): Promise<void> {
    this.calls.push({ op: 'putBytes', key, size: body.byteLength });
    this.objects.set(key, body.slice());
  }

  async getBytes(key: string): Promise<Uint8Array> {
    this.calls.push({ op: 'getBytes', key });
    const bytes = this.objects.get(key);
    if (!bytes) throw Object.assign(new Error(`NoSuchKey ${key}`), { name: 'NoSuchKey' });
    return bytes.slice();
  }

  async sizeOf(key: string): Promise<number | undefined> {
    return this.objects.get(key)?.byteLength;
  }

  async copy(sourceKey: string, targetKey: string): Promise<void> {
    this.calls.push({ op: 'copy', key: targetKey });
    const bytes = this.objects.get(sourceKey);
    if (!bytes) throw Object.assign(new Error(`NoSuchKey ${sourceKey}`), { name: 'NoSuchKey' });
    this.objects.set(targetKey, bytes.slice());
  }

  async stream(key: string): Promise<AsyncIterable<Uint8Array>> {
    const bytes = await this.getBytes(key);
    return (async function* () {
      yield bytes;
    })();
  }

  async delete(key: string): Promise<void> {
    this.calls.push({ op: 'delete', key });
    this.objects.delete(key);
  }

  async startMultipart(key: string): Promise<string> {
    const uploadId = `mpu-${this.nextId++}`;
    this.calls.push({ op: 'startMultipart', key, uploadId });
    this.multiparts.set(uploadId, { key, parts: new Map() });
    return uploadId;
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array): Promise<string> {
    this.calls.push({ op: 'uploadPart', key, uploadId, partNumber, size: body.byteLength });
    const copy = body.slice();
    // Resolve later, as a network call would, so the writer keeps reading meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 1));
    const failure = this.failPart?.(partNumber);
    if (failure) throw failure;
    const upload = this.multiparts.get(uploadId);
    if (!upload || upload.key !== key) throw Object.assign(new Error('NoSuchUpload'), { name: 'NoSuchUpload' });
    const etag = `"etag-${this.nextId++}"`;
    upload.parts.set(partNumber, { etag, bytes: copy });
    return etag;
  }

  async listParts(key: string, uploadId: string): Promise<{ partNumber: number; etag: string; size: number }[]> {
    this.calls.push({ op: 'listParts', key, uploadId });
    const upload = this.multiparts.get(uploadId);
    if (!upload || upload.key !== key) throw Object.assign(new Error('NoSuchUpload'), { name: 'NoSuchUpload' });
    return [...upload.parts.entries()]
      .sort(([a], [b]) => a - b)
      .map(([partNumber, part]) => ({ partNumber, etag: part.etag, size: part.bytes.byteLength }));
  }

  async completeMultipart(key: string, uploadId: string, etags: readonly string[]): Promise<void> {
    this.calls.push({ op: 'completeMultipart', key, uploadId, etags: [...etags] });
    const upload = this.multiparts.get(uploadId);
    if (!upload || upload.key !== key) throw Object.assign(new Error('NoSuchUpload'), { name: 'NoSuchUpload' });
    const chunks = etags.map((etag, index) => {
      const part = upload.parts.get(index + 1);
      if (!part || part.etag !== etag) throw Object.assign(new Error(`part ${index + 1} unknown`), { name: 'InvalidPart' });
      if (index < etags.length - 1 && part.bytes.byteLength < MIN_PART_SIZE) {
        throw Object.assign(new Error(`part ${index + 1} too small`), { name: 'EntityTooSmall' });
      }
      return part.bytes;
    });
    this.objects.set(key, Buffer.concat(chunks));
    this.multiparts.delete(uploadId);
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    this.calls.push({ op: 'abortMultipart', key, uploadId });
    this.multiparts.delete(uploadId);
  }

  asStore(): BlobObjectStore {
    return this as unknown as BlobObjectStore;
  }

  partSizes(uploadId: string | undefined): number[] {
    if (!uploadId) return [];
    const parts = this.multiparts.get(uploadId)?.parts ?? new Map();
    return [...parts.keys()].sort((a, b) => a - b).map((n) => parts.get(n)!.bytes.byteLength);
  }

  /** What the session's bytes are in storage right now: the parts in order, then the tail. */
  stagedBytes(session: UploadSession): Buffer {
    const chunks: Uint8Array[] = [];
    if (session.multipartUploadId) {
      const upload = this.multiparts.get(session.multipartUploadId)!;
      for (let number = 1; number <= session.partCount; number++) chunks.push(upload.parts.get(number)!.bytes);
    }
    if (session.tailKey) chunks.push(this.objects.get(session.tailKey)!);
    return Buffer.concat(chunks);
  }
}

async function newSession(id = '11111111-2222-4333-8444-555555555555'): Promise<UploadSession> {
  return {
    id,
    repository: 'team/app',
    offset: 0,
    partCount: 0,
    tailSize: 0,
    version: 1,
    createdAt: 1_700_000_000_000,
    expiresAt: 1_700_086_400,
  };
}

/** What a session looks like after a trip through DynamoDB: a fresh object, binary as a new Uint8Array. */
function roundTrip(session: UploadSession): UploadSession {
  const { hashState, ...rest } = session;
  return { ...(JSON.parse(JSON.stringify(rest)) as Omit<UploadSession, 'hashState'>), ...(hashState ? { hashState: hashState.slice() } : {}) };
}

function snapshot(session: UploadSession) {
  return { ...structuredClone({ ...session, hashState: undefined }), hashState: session.hashState && Buffer.from(session.hashState).toString('hex') };
}

/** A PATCH: a chunk with Content-Range unless `whole` (a streamed body without one). */
function append(writer: UploadWriter, session: UploadSession, body: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, whole = false) {
  return writer.receive(session, body, { chunked: !whole });
}

/** The digest a finish without a body would prove, or undefined when it must read the object back. */
async function digestOf(writer: UploadWriter, session: UploadSession): Promise<string | undefined> {
  return (await writer.receive(session, [], { finishing: true, chunked: true })).pending!.digest;
}

/** A finish without a body: its bytes put together as one object. */
async function assemble(writer: UploadWriter, session: UploadSession, digest: string): Promise<AssembledBlob> {
  const { pending } = await writer.receive(session, [], { finishing: true, chunked: true });
  return writer.assemble(pending!, digest);
}

/** Random bytes: any reordering, loss or duplication of a chunk shows. */
function pattern(size: number): Uint8Array {
  const bytes = randomBytes(size);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function chunksOf(bytes: Uint8Array, chunkSize: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let start = 0; start < bytes.byteLength; start += chunkSize) chunks.push(bytes.subarray(start, start + chunkSize));
  return chunks;
}

async function* streamOf(chunks: Uint8Array[]): AsyncIterable<Uint8Array> {
  for (const chunk of chunks) {
    await new Promise((resolve) => setImmediate(resolve));
    yield chunk;
  }
}

const sha256 = (...parts: Uint8Array[]) => `sha256:${createHash('sha256').update(Buffer.concat(parts)).digest('hex')}`;

describe('UploadWriter', () => {
  let store: FakeObjectStore;
  let unhandled: unknown[];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeEach(() => {
    store = new FakeObjectStore();
    unhandled = [];
    process.on('unhandledRejection', onUnhandled);
  });
  afterEach(() => {
    process.off('unhandledRejection', onUnhandled);
  });

  it('refuses a part size below S3 minimum', () => {
    expect(() => new UploadWriter(store.asStore(), MIN_PART_SIZE - 1)).toThrow();
    expect(MIN_PART_SIZE).toBe(5 * MiB);
  });

  it('keeps less than a part as a tail, then turns tail + new bytes into one 6 MiB part', async () => {
    const writer = new UploadWriter(store.asStore(), 16 * MiB);
    const first = [pattern(MiB), pattern(MiB), pattern(MiB)];
    const session = await newSession();

    const a = await append(writer, session, streamOf(first));
    expect(a.received).toBe(3 * MiB);
    expect(a.replacedTailKey).toBeUndefined();
    expect(a.session.offset).toBe(3 * MiB);
    expect(a.session.multipartUploadId).toBeUndefined();
    expect(a.session.partCount).toBe(0);
    expect(a.session.tailSize).toBe(3 * MiB);
    expect(a.session.tailKey).toBeDefined();
    expect(store.objects.get(a.session.tailKey!)).toHaveLength(3 * MiB);
    expect(store.calls.filter((c) => c.op === 'startMultipart' || c.op === 'uploadPart')).toEqual([]);
    expect(store.stagedBytes(a.session).equals(Buffer.concat(first))).toBe(true);

    const saved = roundTrip(a.session);
    const more = pattern(3 * MiB);
    const b = await append(writer, saved, streamOf(chunksOf(more, 256 * 1024)));
    expect(b.received).toBe(3 * MiB);
    expect(b.session.offset).toBe(6 * MiB);
    expect(b.session.multipartUploadId).toBeDefined();
    expect(b.session.partCount).toBe(1);
    expect(store.partSizes(b.session.multipartUploadId)).toEqual([6 * MiB]);
    expect(b.session.tailKey).toBeUndefined();
    expect(b.session.tailSize).toBe(0);
    // The old tail was consumed: the caller deletes it once the new session is saved.
    expect(b.replacedTailKey).toBe(a.session.tailKey);
    expect(store.stagedBytes(b.session).equals(Buffer.concat([...first, more]))).toBe(true);
    expect(await digestOf(writer, b.session)).toBe(sha256(...first, more));
  });

  it('writes a whole-body PATCH under 5 MiB at a blob key of the session, which a finish without bytes takes as the blob, writing nothing', async () => {
    const writer = new UploadWriter(store.asStore(), 16 * MiB);
    const body = pattern(MiB);
    const session = await newSession();
    const a = await append(writer, session, streamOf([body]), true);
    expect(a.session.tailKey).toMatch(new RegExp(`^blobs/${session.id}-[0-9a-f-]{36}$`));
    const before = store.calls.length;
    const { pending } = await writer.receive(roundTrip(a.session), [], { finishing: true });
    const assembled = await writer.assemble(pending!, pending!.digest!);
    expect(store.calls.slice(before)).toEqual([]);
    expect(assembled).toEqual({ digest: sha256(body), size: MiB, objectKey: a.session.tailKey });
    expect(Buffer.from(store.objects.get(assembled.objectKey)!).equals(body)).toBe(true);
  });

  it("keeps a chunk's tail under uploads/, and copies it at a finish: blobs/ is replicated, and chunks' tails are rewritten chunk after chunk", async () => {
    const writer = new UploadWriter(store.asStore(), 16 * MiB);
    const a = await append(writer, await newSession(), streamOf([pattern(MiB)]));
    expect(a.session.tailKey).toMatch(/^uploads\//);
    const { pending } = await writer.receive(roundTrip(a.session), [], { finishing: true });
    expect(pending).toMatchObject({ copyFrom: a.session.tailKey, inPlace: false });
    expect(pending!.objectKey).toMatch(/^blobs\/[0-9a-f-]{36}$/);
  });

  it('a whole-body PATCH followed by more bytes: the finish writes an object of its own, the PATCH object is left for the caller to delete', async () => {
    const writer = new UploadWriter(store.asStore(), 16 * MiB);
    const first = pattern(MiB);
    const last = pattern(MiB);
    const a = await append(writer, await newSession(), streamOf([first]), true);
    const { pending } = await writer.receive(roundTrip(a.session), streamOf([last]), { finishing: true });
    expect(pending!.inPlace).toBe(false);
    expect(pending!.objectKey).not.toBe(a.session.tailKey);
    const assembled = await writer.assemble(pending!, sha256(first, last));
    expect(Buffer.from(store.objects.get(assembled.objectKey)!).equals(Buffer.concat([first, last]))).toBe(true);
  });

  it('a session keeps one size whatever its part count: the finish lists the parts (ListParts) and puts the bytes together unchanged', async () => {
    const writer = new UploadWriter(store.asStore(), MIN_PART_SIZE);
    let session = await newSession();
    const chunks: Uint8Array[] = [];
    const sizes: number[] = [];
    for (let part = 1; part <= 25; part++) {
      const chunk = pattern(MIN_PART_SIZE);
      chunks.push(chunk);
      session = roundTrip((await append(writer, session, [chunk])).session);
      sizes.push(JSON.stringify(snapshot(session)).length);
    }
    expect(session.partCount).toBe(25);
    // Only the digits of the offset grow (one more from 10 to 25 parts); ETags kept in the item grew it by some 40 bytes a part.
    expect(sizes[24]! - sizes[9]!).toBeLessThanOrEqual(2);
    const before = store.calls.length;
    const assembled = await assemble(writer, session, sha256(...chunks));
    expect(store.calls.slice(before).map((call) => call.op)).toEqual(['listParts', 'completeMultipart']);
    expect(Buffer.from(store.objects.get(assembled.objectKey)!).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('refuses to put together parts that are not the ones the session recorded: one overwritten with other bytes of the same size', async () => {
    const writer = new UploadWriter(store.asStore(), MIN_PART_SIZE);
    let session = await newSession();
    for (let part = 1; part <= 2; part++) session = roundTrip((await append(writer, session, [pattern(MIN_PART_SIZE)])).session);
    // A request that lost its lease, its UploadPart landing late: same number, same size, other bytes.
    store.multiparts.get(session.multipartUploadId!)!.parts.set(1, { etag: '"late"', bytes: pattern(MIN_PART_SIZE) });
    const { pending } = await writer.receive(session, [], { finishing: true, chunked: true });
    await expect(writer.assemble(pending!, pending!.digest!)).rejects.toMatchObject({ code: 'BLOB_UPLOAD_INVALID' });
    expect(store.calls.some((call) => call.op === 'completeMultipart')).toBe(false);
  });

  it('puts a whole-body PATCH of 5 MiB or more together in the PATCH itself: the session names the object, and the finish records it writing nothing', async () => {
    const writer = new UploadWriter(store.asStore(), MIN_PART_SIZE);
    const body = pattern(12 * MiB);
    const session = await newSession();
    const a = await append(writer, session, streamOf(chunksOf(body, MiB)), true);
    expect(store.calls.map((call) => call.op)).toEqual(['startMultipart', 'uploadPart', 'uploadPart', 'completeMultipart']);
    expect(a.session).toMatchObject({ multipartUploadId: undefined, partCount: 0, tailSize: 12 * MiB, offset: 12 * MiB });
    expect(a.session.tailKey).toMatch(new RegExp(`^blobs/${session.id}-`));
    expect(a.startedUpload).toBeUndefined();
    const before = store.calls.length;
    const { pending } = await writer.receive(roundTrip(a.session), [], { finishing: true });
    const assembled = await writer.assemble(pending!, pending!.digest!);
    expect(store.calls.slice(before)).toEqual([]);
    expect(assembled).toEqual({ digest: sha256(body), size: 12 * MiB, objectKey: a.session.tailKey });
    expect(Buffer.from(store.objects.get(assembled.objectKey)!).equals(body)).toBe(true);

    // More bytes after it (no stock client sends them): the object is streamed into parts again.
    const more = pattern(2 * MiB);
    const b = await append(writer, roundTrip(a.session), [more]);
    expect(b.session).toMatchObject({ partCount: 2, tailSize: 0, offset: 14 * MiB });
    expect(b.replacedTailKey).toBe(a.session.tailKey);
    expect(store.stagedBytes(b.session).equals(Buffer.concat([body, more]))).toBe(true);
  });

  it('cuts a 40 MiB stream into 16 MiB parts; an 8 MiB remainder becomes a final part, not a tail', async () => {
    const writer = new UploadWriter(store.asStore(), 16 * MiB);
    const body = pattern(40 * MiB);
    const result = await append(writer, await newSession(), streamOf(chunksOf(body, MiB)));
    expect(result.received).toBe(40 * MiB);
    expect(store.partSizes(result.session.multipartUploadId)).toEqual([16 * MiB, 16 * MiB, 8 * MiB]);
    expect(result.session.partCount).toBe(3);
    expect(result.session.partsChain).toMatch(/^[0-9a-f]{64}$/);
    expect(result.session.tailKey).toBeUndefined();
    expect(result.session.tailSize).toBe(0);
    expect(store.calls.filter((c) => c.op === 'startMultipart')).toHaveLength(1);
    expect(store.stagedBytes(result.session).equals(body)).toBe(true);

    const assembled = await assemble(writer, result.session, sha256(body));
    expect(assembled.size).toBe(40 * MiB);
    expect(Buffer.from(store.objects.get(assembled.objectKey)!).equals(body)).toBe(true);
  });

  it('with chunks that do not divide the part size, parts are the part size and a remainder under the minimum joins the last part: no tail', async () => {
    const writer = new UploadWriter(store.asStore(), MIN_PART_SIZE);
    const body = pattern(16 * MiB);
    const result = await append(writer, await newSession(), streamOf(chunksOf(body, 3 * MiB)));
    const sizes = store.partSizes(result.session.multipartUploadId);
    expect(sizes).toEqual([5 * MiB, 5 * MiB, 6 * MiB]);
    expect(result.session.tailSize).toBe(0);
    expect(result.session.tailKey).toBeUndefined();
    expect(store.calls.filter((c) => c.op === 'putBytes')).toEqual([]);
    expect(store.stagedBytes(result.session).equals(body)).toBe(true);

    const assembled = await assemble(writer, result.session, sha256(body));
    expect(Buffer.from(store.objects.get(assembled.objectKey)!).equals(body)).toBe(true);
  });

  it('hashes a whole streamed body natively: the session keeps its digest and no resumable state', async () => {
    const writer = new UploadWriter(store.asStore(), MIN_PART_SIZE);
    const body = pattern(6 * MiB + 3);
    const result = await append(writer, await newSession(), streamOf(chunksOf(body, MiB)), true);
    expect(result.session.bytesDigest).toBe(sha256(body));
    expect(result.session.hashState).toBeUndefined();
    expect(await digestOf(writer, roundTrip(result.session))).toBe(sha256(body));

    // A chunk after it cannot be hashed on: the finish must read the object back.
    const more = pattern(1000);
    const after = await append(writer, roundTrip(result.session), streamOf([more]));
    expect(after.session.bytesDigest).toBeUndefined();
    expect(after.session.hashState).toBeUndefined();
    expect(await digestOf(writer, roundTrip(after.session))).toBeUndefined();
    const assembled = await assemble(writer, roundTrip(after.session), sha256(body, more));
    expect(await writer.digestOfObject(assembled.objectKey, 'sha256')).toBe(sha256(body, more));
  });

  it('reads a tail only when the next request brings bytes', async () => {
    const writer = new UploadWriter(store.asStore(), MIN_PART_SIZE);
    const first = await append(writer, await newSession(), streamOf([pattern(1000)]));
    store.calls.length = 0;
    const empty = await append(writer, roundTrip(first.session), streamOf([]));
    expect(empty.received).toBe(0);
    expect(store.calls).toEqual([]);
  });

  it('across several requests, assembles exactly the bytes sent and proves their SHA-256 with the saved state', async () => {
    const writer = new UploadWriter(store.asStore(), MIN_PART_SIZE);
    // Sizes chosen to hit: tail only, tail + bytes < part, tail + bytes = several parts, a 1-byte request, an empty request.
    const requests = [pattern(1000), pattern(2 * MiB + 3), pattern(1), pattern(8 * MiB + 17), new Uint8Array(0), pattern(3 * MiB), pattern(777)];
    let stored = roundTrip(await newSession());
    const sent: Uint8Array[] = [];
    for (const [index, bytes] of requests.entries()) {
      const result = await append(writer, roundTrip(stored), streamOf(chunksOf(bytes, 64 * 1024 + index)));
      expect(result.received).toBe(bytes.byteLength);
      sent.push(bytes);
      if (result.received > 0) {
        stored = roundTrip({ ...result.session, version: stored.version + 1 });
        if (result.replacedTailKey) await store.delete(result.replacedTailKey);
      } else {
        expect(result.session).toEqual(stored);
      }
      expect(stored.offset).toBe(Buffer.concat(sent).byteLength);
      expect(store.stagedBytes(stored).equals(Buffer.concat(sent))).toBe(true);
      expect(await digestOf(writer, roundTrip(stored))).toBe(sha256(...sent));
    }
    // Every non-final part met S3's minimum; completeMultipart in the fake enforces it too.
    const sizes = store.partSizes(stored.multipartUploadId);
    expect(sizes.slice(0, -1).every((size) => size >= MIN_PART_SIZE)).toBe(true);
    expect(stored.tailSize).toBeLessThan(MIN_PART_SIZE);

    const expected = sha256(...sent);
    const assembled = await assemble(writer, roundTrip(stored), expected);
    expect(assembled).toEqual({ digest: expected, size: Buffer.concat(sent).byteLength, objectKey: expect.any(String) });
    const object = store.objects.get(assembled.objectKey)!;
    expect(Buffer.from(object).equals(Buffer.concat(sent))).toBe(true);
    expect(`sha256:${createHash('sha256').update(object).digest('hex')}`).toBe(expected);
    // Nothing left behind but the blob object and the tail the upload service deletes last.
    expect([...store.objects.keys()].sort()).toEqual([assembled.objectKey, stored.tailKey].filter(Boolean).sort());
    expect(store.multiparts.size).toBe(0);
  });

  it('a blob smaller than a part is assembled from its tail alone, without a multipart upload', async () => {
    const writer = new UploadWriter(store.asStore(), MIN_PART_SIZE);
    const a = pattern(300);
    const b = pattern(4000);
    const first = await append(writer, await newSession(), streamOf([a]));
    const second = await append(writer, roundTrip(first.session), streamOf([b]));
    await store.delete(second.replacedTailKey!);
    expect(second.session.multipartUploadId).toBeUndefined();
    const assembled = await assemble(writer, second.session, sha256(a, b));
    expect(Buffer.from(store.objects.get(assembled.objectKey)!).equals(Buffer.concat([a, b]))).toBe(true);
    expect(store.calls.some((c) => c.op === 'startMultipart')).toBe(false);
    expect([...store.objects.keys()].sort()).toEqual([assembled.objectKey, second.session.tailKey!].sort());
  });

  it('an empty blob assembles to an empty object with the SHA-256 of nothing', async () => {
    const writer = new UploadWriter(store.asStore(), MIN_PART_SIZE);
    const session = await newSession();
    const result = await append(writer, session, streamOf([]));
    expect(result.received).toBe(0);
    expect(result.session).toBe(session);
    expect(await digestOf(writer, session)).toBe(sha256());
    const assembled = await assemble(writer, session, sha256());
    expect(assembled.size).toBe(0);
    expect(store.objects.get(assembled.objectKey)).toEqual(new Uint8Array(0));
  });

  it('a body given as a plain iterable of one buffer (the Lambda case) works the same', async () => {
    const writer = new UploadWriter(store.asStore(), MIN_PART_SIZE);
    const body = pattern(7 * MiB + 5);
    const result = await append(writer, await newSession(), [body]);
    expect(store.partSizes(result.session.multipartUploadId)).toEqual([7 * MiB + 5]);
    expect(result.session.tailKey).toBeUndefined();
    expect(await digestOf(writer, result.session)).toBe(sha256(body));
  });

  it('discard aborts the multipart upload and removes the tail', async () => {
    const writer = new UploadWriter(store.asStore(), MIN_PART_SIZE);
    const parted = await append(writer, await newSession(), streamOf(chunksOf(pattern(7 * MiB), MiB)));
    const result = await append(writer, roundTrip(parted.session), streamOf([pattern(MiB)]));
    expect(result.session.multipartUploadId).toBeDefined();
    expect(result.session.tailKey).toBeDefined();
    await writer.discard(result.session);
    expect(store.multiparts.size).toBe(0);
    expect(store.objects.size).toBe(0);
  });

  describe('a part upload that fails mid-stream', () => {
    async function expectCleanFailure(session: UploadSession, body: AsyncIterable<Uint8Array>, writer: UploadWriter) {
      const before = snapshot(session);
      const failure = append(writer, session, body);
      await expect(failure).rejects.toMatchObject({ name: 'InternalError' });
      // Let any stray promise settle before looking for unhandled rejections.
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).toEqual([]);
      expect(snapshot(session)).toEqual(before);
    }

    it('rejects append while the body is still being read, without an unhandled rejection', async () => {
      const writer = new UploadWriter(store.asStore(), MIN_PART_SIZE);
      store.failPart = (n) => (n === 1 ? Object.assign(new Error('We encountered an internal error.'), { name: 'InternalError' }) : undefined);
      const session = roundTrip(await newSession());
      let read = 0;
      const chunks = chunksOf(pattern(24 * MiB), MiB);
      async function* body() {
        for (const chunk of chunks) {
          // Slow enough that part 1 fails while later chunks are still arriving.
          await new Promise((resolve) => setTimeout(resolve, 2));
          read++;
          yield chunk;
        }
      }
      await expectCleanFailure(session, body(), writer);
      // It noticed at the next part boundary and stopped reading: the rest of a large body is not pulled in.
      expect(read).toBeGreaterThan(5);
      expect(read).toBeLessThan(chunks.length);
    });

    it('rejects append when the final part fails, and leaves a session with earlier parts unchanged', async () => {
      const writer = new UploadWriter(store.asStore(), MIN_PART_SIZE);
      const earlier = pattern(6 * MiB + 10);
      const first = await append(writer, await newSession(), streamOf(chunksOf(earlier, MiB)));
      const session = roundTrip({ ...first.session, version: 2 });
      expect(session.partCount).toBe(1);
      store.failPart = (n) => (n === 2 ? Object.assign(new Error('boom'), { name: 'InternalError' }) : undefined);
      const retryBytes = pattern(5 * MiB);
      await expectCleanFailure(session, streamOf(chunksOf(retryBytes, MiB)), writer);
      expect(session.partCount).toBe(1);
      // A retry of the same request, once S3 recovers, still produces the right bytes.
      store.failPart = undefined;
      const retry = await append(writer, session, streamOf(chunksOf(retryBytes, MiB)));
      expect(store.stagedBytes(retry.session).equals(Buffer.concat([earlier, retryBytes]))).toBe(true);
      expect(await digestOf(writer, retry.session)).toBe(sha256(earlier, retryBytes));
    });

    it('rejects when a part fails and no further part follows before the body ends', async () => {
      const writer = new UploadWriter(store.asStore(), MIN_PART_SIZE);
      store.failPart = () => Object.assign(new Error('boom'), { name: 'InternalError' });
      await expectCleanFailure(roundTrip(await newSession()), streamOf(chunksOf(pattern(5 * MiB + 1), MiB)), writer);
    });
  });
});
