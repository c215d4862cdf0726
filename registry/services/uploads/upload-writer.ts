import type { BodyStream } from '../../model/http.js';
import { randomUUID } from 'node:crypto';
import { RegistryError } from '../../model/oci/errors.js';
import type { BlobObjectStore } from '../../storage/blob-object-store.js';
import { objectKeys } from '../../storage/keys.js';
import type { UploadSession } from '../../storage/upload-session-store.js';
import { ResumableDigest } from './resumable-digest.js';

/** S3's minimum size for every part but the last. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
/** S3's maximum number of parts in one multipart upload. */
const MAX_PARTS = 10_000;

export interface AppendResult {
  /** The session after the append, not yet saved. */
  session: UploadSession;
  received: number;
  /** The tail object this append replaced; delete it once the new session is saved. */
  replacedTailKey?: string;
}

export interface AssembledBlob {
  digest: string;
  size: number;
  objectKey: string;
}

/**
 * Streams request bodies into an upload's S3 multipart upload: bytes are hashed as they
 * arrive and cut into parts; what is left at the end of a request (less than a part) is kept
 * as a tail object and put in front of the next request's bytes. Memory per upload is bounded
 * by two parts, whatever the body's size.
 */
export class UploadWriter {
  constructor(
    private readonly objects: BlobObjectStore,
    private readonly partSize: number,
  ) {
    if (partSize < MIN_PART_SIZE) throw new Error(`part size must be at least ${MIN_PART_SIZE}`);
  }

  async append(session: UploadSession, body: BodyStream): Promise<AppendResult> {
    const digest = await ResumableDigest.start(session.hashState, session.algorithm);
    const buffer = new PartBuffer();
    const parts = new PartUploader(this.objects, session);
    if (session.tailKey && session.tailSize > 0) buffer.push(await this.objects.getBytes(session.tailKey));
    let received = 0;
    for await (const chunk of body) {
      digest.update(chunk);
      received += chunk.byteLength;
      buffer.push(chunk);
      if (buffer.size >= this.partSize) await parts.upload(buffer.take());
    }
    if (received === 0) return { session, received };
    if (buffer.size >= MIN_PART_SIZE) await parts.upload(buffer.take());
    await parts.settle();
    let tailKey: string | undefined;
    const tailSize = buffer.size;
    if (tailSize > 0) {
      tailKey = objectKeys.uploadTail(session.id, randomUUID());
      await this.objects.putBytes(tailKey, buffer.take());
    }
    return {
      session: {
        ...session,
        offset: session.offset + received,
        hashState: digest.save(),
        multipartUploadId: parts.multipartUploadId,
        partETags: parts.etags,
        tailKey,
        tailSize,
      },
      received,
      replacedTailKey: session.tailKey,
    };
  }

  /** Whether the session's object exists: an earlier finish assembled it (and did not get to record the blob). */
  async isAssembled(session: UploadSession): Promise<boolean> {
    return (await this.objects.sizeOf(this.objectKeyOf(session))) !== undefined;
  }

  /**
   * For a finish retried after its object was assembled: hashes and counts the last bytes
   * again and writes nothing (the multipart upload is complete and takes no more parts). The
   * digest check that follows proves they are the bytes the object holds; bytes that make
   * another size cannot be, and are refused.
   */
  async replay(session: UploadSession, body: BodyStream): Promise<AppendResult> {
    const digest = await ResumableDigest.start(session.hashState, session.algorithm);
    let received = 0;
    for await (const chunk of body) {
      digest.update(chunk);
      received += chunk.byteLength;
    }
    const size = await this.objects.sizeOf(this.objectKeyOf(session));
    if (size !== session.offset + received) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'this upload was finished already with other bytes', {
        detail: { size, received: session.offset + received },
      });
    }
    return { session: { ...session, offset: session.offset + received, hashState: digest.save() }, received };
  }

  objectKeyOf(session: UploadSession): string {
    return objectKeys.blobData(session.id);
  }

  /** The digest of everything the session has received, with the session's algorithm. */
  async digestOf(session: UploadSession): Promise<string> {
    return (await ResumableDigest.start(session.hashState, session.algorithm)).digest();
  }

  /**
   * Puts the session's bytes together as one S3 object; the caller has verified the digest.
   * Safe to repeat: the object's key belongs to this session alone, so an object already
   * there with the session's size is this assembly, finished by an earlier attempt.
   */
  async assemble(session: UploadSession, digest: string): Promise<AssembledBlob> {
    const objectKey = this.objectKeyOf(session);
    const assembled = { digest, size: session.offset, objectKey };
    if ((await this.objects.sizeOf(objectKey)) === session.offset) return assembled;
    const tail = session.tailKey && session.tailSize > 0 ? await this.objects.getBytes(session.tailKey) : undefined;
    if (session.multipartUploadId) {
      const etags = [...session.partETags];
      if (tail) etags.push(await this.objects.uploadPart(objectKey, session.multipartUploadId, etags.length + 1, tail));
      await this.objects.completeMultipart(objectKey, session.multipartUploadId, etags);
    } else {
      await this.objects.putBytes(objectKey, tail ?? new Uint8Array(0));
    }
    return assembled;
  }

  /** Removes the session's unfinished S3 state: its multipart upload and its tail. */
  async discard(session: UploadSession): Promise<void> {
    if (session.multipartUploadId) await this.objects.abortMultipart(this.objectKeyOf(session), session.multipartUploadId);
    if (session.tailKey) await this.objects.delete(session.tailKey);
  }
}

/** Chunks gathered until they make a part; concatenated once, when taken. */
class PartBuffer {
  private chunks: Uint8Array[] = [];
  size = 0;

  push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.size += chunk.byteLength;
  }

  take(): Uint8Array {
    const joined = Buffer.concat(this.chunks, this.size);
    this.chunks = [];
    this.size = 0;
    return joined;
  }
}

/** Uploads parts one after another while the next one fills: one part in flight at a time. */
class PartUploader {
  multipartUploadId: string | undefined;
  readonly etags: string[];
  private inFlight: Promise<void> = Promise.resolve();
  // Kept rather than left as a rejected promise: while the body is still being read, nobody
  // awaits the part, and an unawaited rejection would take the whole process down.
  private failure: unknown;

  constructor(
    private readonly objects: BlobObjectStore,
    private readonly session: UploadSession,
  ) {
    this.multipartUploadId = session.multipartUploadId;
    this.etags = [...session.partETags];
  }

  async upload(part: Uint8Array): Promise<void> {
    await this.settle();
    const key = objectKeys.blobData(this.session.id);
    this.multipartUploadId ??= await this.objects.startMultipart(key);
    const partNumber = this.etags.length + 1;
    if (partNumber > MAX_PARTS) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', `upload exceeds ${MAX_PARTS} parts`);
    }
    // Reserve the slot now so the next part gets the next number.
    this.etags.push('');
    const uploadId = this.multipartUploadId;
    this.inFlight = this.objects.uploadPart(key, uploadId, partNumber, part).then(
      (etag) => {
        this.etags[partNumber - 1] = etag;
      },
      (error: unknown) => {
        this.failure ??= error;
      },
    );
  }

  async settle(): Promise<void> {
    await this.inFlight;
    if (this.failure !== undefined) throw this.failure;
  }
}
