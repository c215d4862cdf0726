import { createHash, randomUUID, type Hash } from 'node:crypto';
import type { BodyStream } from '../../model/http.js';
import { RegistryError } from '../../model/oci/errors.js';
import type { DigestAlgorithm } from '../../model/oci/grammar.js';
import type { BlobObjectStore } from '../../storage/blob-object-store.js';
import { objectKeys } from '../../storage/keys.js';
import type { UploadSession } from '../../storage/upload-session-store.js';
import { ResumableDigest } from './resumable-digest.js';

/** S3's minimum size for every part but the last. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
/** S3's maximum number of parts in one multipart upload. */
const MAX_PARTS = 10_000;

export interface ReceiveOptions {
  /** The finish: the last bytes are held for `assemble` instead of being kept as a tail. */
  finishing?: boolean;
  /** The body came with a Content-Range: a chunk, after which more may come. */
  chunked?: boolean;
  /**
   * Awaited once before the first write into the session's own multipart upload, which another
   * request could be writing too (the caller takes its lease there). Writes into a multipart
   * upload this request started, or to a fresh tail, need nothing: no other request names them.
   */
  beforeSharedWrite?: () => Promise<void>;
}

export interface Received {
  /** The session after the bytes, not yet saved (a finish never saves it). */
  session: UploadSession;
  received: number;
  /** The tail object this request replaced; delete it once the new session is saved. */
  replacedTailKey?: string;
  /** A multipart upload this request started: abort it when the session is not saved. */
  startedUpload?: { key: string; uploadId: string };
  /** A finish: what `assemble` needs. */
  pending?: PendingObject;
}

/** A finish's bytes, all received: the parts sent, and what is left to write. */
export interface PendingObject {
  objectKey: string;
  size: number;
  /** The digest of all the bytes, when known without reading them back; undefined: read the object back. */
  digest?: string;
  uploadId?: string;
  /** Parts of `uploadId` earlier requests wrote, as the session recorded them: listed at the finish. */
  earlier: RecordedParts;
  /** ETags of the parts this request wrote, numbered on from `earlier`. */
  etags: string[];
  /** Bytes still to write: the last part, or the whole object. */
  last?: Uint8Array;
  /** The session's tail, unread, is the whole blob: copied inside S3 (a tail under `uploads/`). */
  copyFrom?: string;
  /** The session's tail is the whole blob and is a blob object already (`objectKeys.sessionBlob`): nothing to write. */
  inPlace?: boolean;
  /** The session's multipart upload refused a part: an earlier finish completed it. */
  refused: boolean;
}

/**
 * What a session knows of its parts instead of their ETags, a fixed size whatever their number:
 * how many, the chain of their ETags, and their bytes (all but the tail's).
 */
export interface RecordedParts {
  partCount: number;
  partBytes: number;
  partsChain?: string;
}

export interface AssembledBlob {
  digest: string;
  size: number;
  objectKey: string;
}

/**
 * Streams request bodies into an upload's S3 parts, hashing the bytes as they arrive. A body
 * that carries the whole blob (one PATCH without Content-Range, a monolithic PUT, POST
 * ?digest=) is hashed with native SHA; only chunked uploads keep a resumable hash state. Bytes
 * are cut into parts of `partSize`, and the last part takes what is left up to S3's minimum:
 * a body of 5 MiB or more leaves no tail. Less than that at the end of a PATCH is kept as a
 * tail object (with a fresh name) and put in front of the next request's bytes, read only
 * once the next request brings bytes. A whole-body PATCH leaves one object of all its bytes
 * (completing its own multipart upload), which the finish records as it is. The session keeps
 * no part ETags: the finish lists them (ListParts) and checks them against the count and chain
 * the session recorded. Memory per upload is bounded by about two parts.
 */
export class UploadWriter {
  constructor(
    private readonly objects: BlobObjectStore,
    private readonly partSize: number,
  ) {
    if (partSize < MIN_PART_SIZE) throw new Error(`part size must be at least ${MIN_PART_SIZE}`);
  }

  async receive(session: UploadSession, body: BodyStream, options: ReceiveOptions = {}): Promise<Received> {
    const digest = await RunningDigest.start(session, options.chunked === true);
    const buffer = new PartBuffer();
    const finishing = options.finishing === true;
    // The bytes of a whole-body PATCH (nothing before them, no Content-Range) are most likely
    // the whole blob: they are written as one object where a blob lives, at a key of this
    // request's own, so that the finish can record them as they are.
    const whole = !finishing && session.offset === 0 && options.chunked !== true;
    // A finish that starts a multipart upload writes it at a key of its own: two finishes of
    // one session never complete two uploads onto one key.
    const ownKey = whole
      ? objectKeys.sessionBlob(session.id, randomUUID())
      : session.multipartUploadId || !finishing
        ? this.objectKeyOf(session)
        : objectKeys.blobData(randomUUID());
    const parts = new PartUploader(this.objects, session, ownKey, options.beforeSharedWrite, finishing);
    const fill = async (chunk: Uint8Array) => {
      buffer.push(chunk);
      if (buffer.size >= this.partSize + MIN_PART_SIZE) await parts.upload(buffer.take(this.partSize));
    };
    let tailRead = false;
    let received = 0;
    try {
      for await (const chunk of body) {
        if (chunk.byteLength === 0) continue;
        if (!tailRead) {
          tailRead = true;
          // Streamed: the tail may be a whole-body PATCH's object of any size.
          if (session.tailKey && session.tailSize > 0) for await (const bytes of await this.objects.stream(session.tailKey)) await fill(bytes);
        }
        digest.update(chunk);
        received += chunk.byteLength;
        await fill(chunk);
      }
      if (finishing) {
        await parts.settle();
        let last = buffer.size > 0 ? buffer.take() : undefined;
        let copyFrom: string | undefined;
        let objectKey = ownKey;
        let inPlace = false;
        if (!tailRead && session.tailKey && session.tailSize > 0) {
          if (parts.uploadId) last = await this.objects.getBytes(session.tailKey);
          else if (isSessionBlob(session, session.tailKey)) [objectKey, inPlace] = [session.tailKey, true];
          else copyFrom = session.tailKey;
        }
        const size = session.offset + received;
        const pending = {
          objectKey,
          inPlace,
          size,
          digest: digest.final(),
          uploadId: parts.uploadId,
          earlier: recordedParts(session),
          etags: parts.etags,
          last,
          copyFrom,
          refused: parts.refused,
        };
        return { session: { ...session, offset: size }, received, ...parts.started(), pending };
      }
      if (received === 0) return { session, received };
      if (buffer.size >= MIN_PART_SIZE || (whole && parts.uploadId && buffer.size > 0)) await parts.upload(buffer.take());
      await parts.settle();
      if (whole && parts.uploadId) {
        // Its parts' ETags are known here only: the object is put together now, and the session
        // names it like a small body's object (nothing of the parts is kept).
        await this.objects.completeMultipart(ownKey, parts.uploadId, parts.etags);
        return {
          session: {
            ...session,
            offset: received,
            ...digest.saved(),
            multipartUploadId: undefined,
            ...NO_PARTS,
            tailKey: ownKey,
            tailSize: received,
          },
          received,
          replacedTailKey: session.tailKey,
        };
      }
    } catch (error) {
      await parts.abandon();
      throw error;
    }
    let tailKey: string | undefined;
    const tailSize = buffer.size;
    if (tailSize > 0) {
      // Chunks' tails stay under `uploads/`: they are rewritten chunk after chunk, and `blobs/` is replicated.
      tailKey = whole ? ownKey : objectKeys.uploadTail(session.id, randomUUID());
      await this.objects.putBytes(tailKey, buffer.take());
    }
    return {
      session: {
        ...session,
        offset: session.offset + received,
        ...digest.saved(),
        multipartUploadId: parts.uploadId,
        ...parts.recorded(),
        tailKey,
        tailSize,
      },
      received,
      replacedTailKey: session.tailKey,
      ...parts.started(),
    };
  }

  objectKeyOf(session: UploadSession): string {
    return objectKeys.blobData(session.id);
  }

  /**
   * Writes what is left of a finish and puts the object together; the caller has verified the
   * digest if `pending.digest` is known. A CompleteMultipartUpload that fails, or parts refused,
   * are looked at once: an earlier attempt of this finish may have completed the upload (and
   * died before recording the blob); an object of the session's size is that assembly.
   */
  async assemble(pending: PendingObject, digest: string): Promise<AssembledBlob> {
    const assembled = { digest, size: pending.size, objectKey: pending.objectKey };
    if (pending.inPlace) {
      // Written by the session's PATCH, and hashed then: the blob is that object.
    } else if (pending.copyFrom) {
      await this.objects.copy(pending.copyFrom, pending.objectKey);
    } else if (pending.uploadId) {
      const etags = [...pending.etags];
      try {
        if (pending.refused) throw new Error('the multipart upload refused a part');
        const count = pending.earlier.partCount + etags.length;
        if (pending.last && pending.last.byteLength > 0) {
          etags.push(await this.objects.uploadPart(pending.objectKey, pending.uploadId, count + 1, pending.last));
        }
        const earlier = pending.earlier.partCount > 0 ? await this.listRecordedParts(pending.objectKey, pending.uploadId, pending.earlier) : [];
        await this.objects.completeMultipart(pending.objectKey, pending.uploadId, [...earlier, ...etags]);
      } catch (error) {
        const size = await this.objects.sizeOf(pending.objectKey);
        if (size === undefined) throw error;
        if (size !== pending.size) {
          throw new RegistryError('BLOB_UPLOAD_INVALID', 'this upload was finished already with other bytes', {
            detail: { size, received: pending.size },
          });
        }
      }
    } else {
      await this.objects.putBytes(pending.objectKey, pending.last ?? new Uint8Array(0));
    }
    return assembled;
  }

  /**
   * The ETags of parts 1..n that earlier requests wrote, from ListParts (paged), checked against
   * what the session recorded: their number, their bytes, and the chain of their ETags (a part
   * overwritten by a request that lost its lease shows there, with the same size).
   */
  private async listRecordedParts(key: string, uploadId: string, recorded: RecordedParts): Promise<string[]> {
    const listed = (await this.objects.listParts(key, uploadId)).filter((part) => part.partNumber <= recorded.partCount);
    const bytes = listed.reduce((sum, part) => sum + part.size, 0);
    const chain = listed.reduce<string | undefined>((before, part) => chained(before, part.etag), undefined);
    const contiguous = listed.every((part, index) => part.partNumber === index + 1);
    if (!contiguous || listed.length !== recorded.partCount || bytes !== recorded.partBytes || chain !== recorded.partsChain) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', "the upload's parts in S3 are not the ones it recorded", {
        detail: { parts: recorded.partCount, listed: listed.length, bytes: recorded.partBytes, listedBytes: bytes },
      });
    }
    return listed.map((part) => part.etag);
  }

  /** Removes the session's unfinished S3 state: its multipart upload and its tail. */
  async discard(session: UploadSession): Promise<void> {
    if (session.multipartUploadId) await this.objects.abortMultipart(this.objectKeyOf(session), session.multipartUploadId);
    if (session.tailKey) await this.objects.delete(session.tailKey);
  }

  /** Undoes what a request wrote that no saved session names: its new tail and the multipart upload it started. */
  async dropUnsaved(before: UploadSession, received: Received | undefined): Promise<void> {
    const tailKey = received?.session.tailKey;
    if (tailKey && tailKey !== before.tailKey) await this.objects.delete(tailKey);
    if (received?.startedUpload) await this.objects.abortMultipart(received.startedUpload.key, received.startedUpload.uploadId);
  }

  /** Reads the assembled object back and hashes it: for a session whose bytes could not all be hashed as they came. */
  async digestOfObject(key: string, algorithm: DigestAlgorithm): Promise<string> {
    const hash = createHash(algorithm);
    for await (const chunk of await this.objects.stream(key)) hash.update(chunk);
    return `${algorithm}:${hash.digest('hex')}`;
  }
}

/** The tail is a blob object of this session's (`objectKeys.sessionBlob`), not an `uploads/` staging object. */
export function isSessionBlob(session: UploadSession, key: string): boolean {
  return key.startsWith(objectKeys.sessionBlob(session.id, ''));
}

/**
 * The hash of an upload's bytes, as far as it can go: native for a body that is the whole blob
 * (nothing before it, no Content-Range), resumable (hash-wasm, saved in the session) for chunks,
 * none for bytes that follow a natively hashed body (its state cannot be saved): such a session
 * is proven by reading the assembled object back at the finish.
 */
class RunningDigest {
  private constructor(
    private readonly session: UploadSession,
    private readonly native?: Hash,
    private readonly resumable?: ResumableDigest,
  ) {}

  private updated = false;

  static async start(session: UploadSession, chunked: boolean): Promise<RunningDigest> {
    const algorithm = session.algorithm ?? 'sha256';
    if (session.offset === 0 && !chunked) return new RunningDigest(session, createHash(algorithm));
    if (session.offset === 0 || session.hashState)
      return new RunningDigest(session, undefined, await ResumableDigest.start(session.hashState, algorithm));
    return new RunningDigest(session);
  }

  update(chunk: Uint8Array): void {
    this.updated = true;
    this.native?.update(chunk);
    this.resumable?.update(chunk);
  }

  /** What the session keeps to prove its bytes later. */
  saved(): Pick<UploadSession, 'hashState' | 'bytesDigest'> {
    if (this.native) return { hashState: undefined, bytesDigest: this.final() };
    if (this.resumable) return { hashState: this.resumable.save(), bytesDigest: undefined };
    return { hashState: undefined, bytesDigest: this.updated ? undefined : this.session.bytesDigest };
  }

  /** The digest of all the session's bytes; undefined when they must be read back. Spends the hash. */
  final(): string | undefined {
    const algorithm = this.session.algorithm ?? 'sha256';
    if (this.native) return `${algorithm}:${this.native.digest('hex')}`;
    if (this.resumable) return this.resumable.digest();
    return this.updated ? undefined : this.session.bytesDigest;
  }
}

/**
 * Chunks gathered until they make a part; each byte is copied once, into the part that takes
 * it. What a part leaves stays as the chunks it came in (the one cut across, as a view of it),
 * rather than being copied along with the part and then again into the next one.
 */
class PartBuffer {
  private chunks: Uint8Array[] = [];
  size = 0;

  push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.size += chunk.byteLength;
  }

  /** The first `count` bytes (all of them by default); the rest stays. */
  take(count = this.size): Uint8Array {
    let whole = 0;
    let covered = 0;
    while (covered < count && covered + this.chunks[whole]!.byteLength <= count) covered += this.chunks[whole++]!.byteLength;
    const taken = this.chunks.slice(0, whole);
    const rest = this.chunks.slice(whole);
    if (covered < count) {
      const cut = rest[0]!;
      taken.push(cut.subarray(0, count - covered));
      rest[0] = cut.subarray(count - covered);
    }
    this.chunks = rest;
    this.size -= count;
    return Buffer.concat(taken, count);
  }
}

/** A session without parts. */
const NO_PARTS: Pick<UploadSession, 'partCount' | 'partsChain'> = { partCount: 0, partsChain: undefined };

function recordedParts(session: UploadSession): RecordedParts {
  const partBytes = session.offset - session.tailSize;
  // A session saved before parts were counted kept their ETags: the same facts, read from them.
  const { partETags } = session as { partETags?: string[] };
  if (session.partCount === undefined && partETags)
    return { partCount: partETags.length, partBytes, partsChain: partETags.reduce(chained, undefined) };
  return { partCount: session.partCount ?? 0, partBytes, partsChain: session.partsChain };
}

/** The chain of part ETags after one more part: SHA-256 of the chain so far and the part's ETag. */
function chained(before: string | undefined, etag: string): string {
  return createHash('sha256')
    .update(before ?? '')
    .update('\n')
    .update(etag)
    .digest('hex');
}

/** Uploads parts one after another while the next one fills: one part in flight at a time. */
class PartUploader {
  uploadId: string | undefined;
  /** ETags of the parts this request uploads, numbered on from the session's. */
  readonly etags: string[] = [];
  private readonly before: RecordedParts;

  private startedUploadId: string | undefined;
  private inFlight: Promise<void> = Promise.resolve();
  // Kept rather than left as a rejected promise: while the body is still being read, nobody
  // awaits the part, and an unawaited rejection would take the whole process down.
  private failure: unknown;
  private sharedWriteAllowed = false;
  /** A finish's part refused by the session's multipart upload: completed by an earlier attempt. */
  refused = false;

  constructor(
    private readonly objects: BlobObjectStore,
    private readonly session: UploadSession,
    private readonly key: string,
    private readonly beforeSharedWrite: (() => Promise<void>) | undefined,
    private readonly finishing: boolean,
  ) {
    this.uploadId = session.multipartUploadId;
    this.before = recordedParts(session);
  }

  /** What the session records of its parts once this request's have settled. */
  recorded(): Pick<UploadSession, 'partCount' | 'partsChain'> {
    return { partCount: this.before.partCount + this.etags.length, partsChain: this.etags.reduce(chained, this.before.partsChain) };
  }

  async upload(part: Uint8Array): Promise<void> {
    await this.settle();
    if (this.refused) return;
    if (this.uploadId === undefined) {
      this.uploadId = await this.objects.startMultipart(this.key);
      this.startedUploadId = this.uploadId;
    } else if (this.uploadId === this.session.multipartUploadId && !this.sharedWriteAllowed) {
      await this.beforeSharedWrite?.();
      this.sharedWriteAllowed = true;
    }
    const index = this.etags.length;
    const partNumber = this.before.partCount + index + 1;
    if (partNumber > MAX_PARTS) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', `upload exceeds ${MAX_PARTS} parts`);
    }
    // Reserve the slot now so the next part gets the next number.
    this.etags.push('');
    const uploadId = this.uploadId;
    this.inFlight = this.objects.uploadPart(this.key, uploadId, partNumber, part).then(
      (etag) => {
        this.etags[index] = etag;
      },
      (error: unknown) => {
        if (this.finishing && uploadId === this.session.multipartUploadId && (error as { name?: string }).name === 'NoSuchUpload')
          this.refused = true;
        else this.failure ??= error;
      },
    );
  }

  async settle(): Promise<void> {
    await this.inFlight;
    if (this.failure !== undefined) throw this.failure;
  }

  started(): Pick<Received, 'startedUpload'> {
    return this.startedUploadId ? { startedUpload: { key: this.key, uploadId: this.startedUploadId } } : {};
  }

  /** After a failure: waits for the part in flight and aborts the upload this request started. */
  async abandon(): Promise<void> {
    await this.inFlight;
    if (this.startedUploadId) await this.objects.abortMultipart(this.key, this.startedUploadId).catch(() => false);
  }
}
