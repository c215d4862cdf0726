import { createHash, randomUUID } from 'node:crypto';
import type { BodyStream } from '../http/types.js';
import { RegistryError } from '../oci/errors.js';
import { parseDigest, type DigestAlgorithm } from '../oci/grammar.js';
import { BlobGoneError, type BlobIndex, type BlobRecord } from '../storage/blob-index.js';
import type { BlobObjectStore } from '../storage/blob-object-store.js';
import type { UploadSession, UploadSessionStore } from '../storage/upload-session-store.js';
import { ResumableDigest } from './resumable-digest.js';
import type { AppendResult, UploadWriter } from './upload-writer.js';

export interface ChunkRange {
  start: number;
  end: number;
}

/** Long enough for the longest request a Lambda function can serve (15 minutes). */
const LEASE_MS = 15 * 60 * 1000;

/**
 * The lifecycle of a blob upload: open, append (streamed or in chunks), finish with digest
 * verification, cancel. A blob becomes visible only once its bytes are assembled and its
 * digest is proven. A request that writes takes a lease on the session first, so that two
 * requests never write parts of one upload at once; a failed request leaves the session as
 * it was, ready for the client's retry.
 */
export class UploadService {
  constructor(
    private readonly sessions: UploadSessionStore,
    private readonly writer: UploadWriter,
    private readonly blobs: BlobIndex,
    private readonly objects: BlobObjectStore,
    private readonly sessionTtlSeconds: number,
  ) {}

  async open(repository: string): Promise<UploadSession> {
    const session = await this.newSession(repository);
    await this.sessions.save(session);
    return session;
  }

  /** The session, if it exists and belongs to the repository; BLOB_UPLOAD_UNKNOWN otherwise. */
  async get(repository: string, id: string): Promise<UploadSession> {
    const session = isUploadId(id) ? await this.sessions.get(id) : undefined;
    if (!session || session.repository !== repository) {
      throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'upload unknown to registry', { detail: { uuid: id } });
    }
    return session;
  }

  /**
   * Appends a request body. With a range (chunked upload), the chunk must start where the
   * session ends (416 otherwise) and its length must match (400 otherwise).
   */
  async append(session: UploadSession, body: BodyStream | undefined, range?: ChunkRange): Promise<UploadSession> {
    checkStart(session, range);
    const leased = await this.lease(session);
    const written = await this.receive(leased, body, range, true);
    const next = { ...written.session, ...NO_LEASE, version: leased.version + 1, expiresAt: this.expiry() };
    if (!(await this.sessions.save(next))) {
      await this.dropNewTail(leased, written);
      throw rangeError(session, 'the upload was changed by another request');
    }
    if (written.replacedTailKey) await this.objects.delete(written.replacedTailKey);
    return next;
  }

  /**
   * Takes the last bytes (if any), proves the digest and makes the blob visible in the
   * repository. A mismatch answers DIGEST_INVALID, ends the session and stores nothing.
   */
  async finish(session: UploadSession, body: BodyStream | undefined, expected: string, range?: ChunkRange): Promise<BlobRecord> {
    const algorithm = digestAlgorithm(expected);
    checkStart(session, range);
    return this.conclude(await this.lease(session), body, expected, algorithm, range, true);
  }

  /** POST with `?digest=` and the whole blob as its body: a session that is never saved. */
  async uploadWhole(repository: string, body: BodyStream | undefined, expected: string): Promise<BlobRecord> {
    const algorithm = digestAlgorithm(expected);
    return this.conclude(await this.newSession(repository), body, expected, algorithm, undefined, false);
  }

  async cancel(session: UploadSession): Promise<void> {
    await this.writer.discard(session);
    await this.sessions.delete(session.id);
  }

  /** Links a blob of `from` into `repository`; answers undefined when `from` does not hold it. */
  async mount(repository: string, from: string, digest: string): Promise<BlobRecord | undefined> {
    const source = await this.blobs.getLink(from, digest);
    return source && (await this.linkIfLive(repository, source)) ? source : undefined;
  }

  private async conclude(
    session: UploadSession,
    body: BodyStream | undefined,
    expected: string,
    algorithm: DigestAlgorithm,
    range: ChunkRange | undefined,
    persisted: boolean,
  ): Promise<BlobRecord> {
    // The last bytes are never saved to the session: it ends here, or the retry sends them again.
    const written = await this.receive(session, body, range, persisted);
    const complete = written.session;
    try {
      const record = await this.prove(complete, expected, algorithm);
      await this.sessions.delete(session.id);
      await this.deleteTails(session.tailKey, complete.tailKey);
      return record;
    } catch (error) {
      if (error instanceof RegistryError && error.code === 'DIGEST_INVALID') {
        await this.cancel(complete);
        await this.deleteTails(session.tailKey);
      } else {
        await this.abandon(session, written, persisted);
      }
      throw error;
    }
  }

  /** Verifies the digest, assembles the object and records and links the blob. */
  private async prove(session: UploadSession, expected: string, algorithm: DigestAlgorithm): Promise<BlobRecord> {
    let assembled: BlobRecord;
    if (algorithm === 'sha256') {
      const actual = await this.writer.digestOf(session);
      if (actual !== expected) throw digestMismatch(expected, actual);
      const existing = await this.blobs.getBlob(expected);
      if (existing && existing.objectKey !== this.writer.objectKeyOf(session) && (await this.linkIfLive(session.repository, existing))) {
        await this.writer.discard(session);
        return existing;
      }
      assembled = await this.writer.assemble(session, expected);
    } else {
      // The resumable state is SHA-256 only: other algorithms are proven on the assembled object.
      assembled = await this.writer.assemble(session, expected);
      const actual = await this.digestOfObject(assembled.objectKey, algorithm);
      if (actual !== expected) {
        await this.objects.delete(assembled.objectKey);
        throw digestMismatch(expected, actual);
      }
    }
    return this.recordAndLink(session.repository, assembled);
  }

  /**
   * Records the assembled blob and links it. When the same bytes are recorded already, the
   * existing object is linked and ours dropped, unless GC has claimed it: then ours replaces it.
   * The one way a proven blob becomes visible: direct uploads (direct-upload-service.ts) use it too.
   */
  async recordAndLink(repository: string, assembled: BlobRecord): Promise<BlobRecord> {
    for (;;) {
      const { created, record } = await this.blobs.recordBlob(assembled);
      if (created || record.objectKey === assembled.objectKey) {
        await this.blobs.link(repository, record);
        return record;
      }
      if (await this.linkIfLive(repository, record)) {
        await this.objects.delete(assembled.objectKey);
        return record;
      }
    }
  }

  /** Links a recorded blob; answers false when GC has claimed it meanwhile. */
  private async linkIfLive(repository: string, record: BlobRecord): Promise<boolean> {
    try {
      await this.blobs.link(repository, record);
      return true;
    } catch (error) {
      if (error instanceof BlobGoneError) return false;
      throw error;
    }
  }

  /** Streams the body in and checks it against the range; on failure, undoes what it wrote. */
  private async receive(session: UploadSession, body: BodyStream | undefined, range: ChunkRange | undefined, persisted: boolean): Promise<AppendResult> {
    let written: AppendResult | undefined;
    try {
      written = await this.writer.append(session, body ?? []);
      if (range && written.received !== range.end - range.start + 1) {
        throw new RegistryError('BLOB_UPLOAD_INVALID', 'chunk length does not match Content-Range', {
          detail: { range: `${range.start}-${range.end}`, received: written.received },
        });
      }
      return written;
    } catch (error) {
      await this.abandon(session, written, persisted);
      throw error;
    }
  }

  /** Takes the session for one writing request; 416 while another request holds it. */
  private async lease(session: UploadSession): Promise<UploadSession> {
    if (session.direct) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'this is a direct upload: its bytes go to S3, not in PATCH or PUT (docs/direct-push.md)');
    }
    if (session.leaseHolder && (session.leaseUntil ?? 0) > Date.now()) {
      throw rangeError(session, 'another request is writing to this upload');
    }
    const leased = { ...session, leaseHolder: randomUUID(), leaseUntil: Date.now() + LEASE_MS, version: session.version + 1 };
    if (!(await this.sessions.save(leased))) throw rangeError(session, 'the upload was changed by another request');
    return leased;
  }

  /** After a failed request: drop what it wrote that the session does not name, and free the session. */
  private async abandon(session: UploadSession, written: AppendResult | undefined, persisted: boolean): Promise<void> {
    await this.dropNewTail(session, written);
    if (persisted) {
      // Best effort: an unreleased lease lapses by itself.
      await this.sessions.save({ ...session, ...NO_LEASE, version: session.version + 1 }).catch(() => false);
    }
  }

  private async dropNewTail(session: UploadSession, written: AppendResult | undefined): Promise<void> {
    const tailKey = written?.session.tailKey;
    if (tailKey && tailKey !== session.tailKey) await this.objects.delete(tailKey);
  }

  private async deleteTails(...tailKeys: (string | undefined)[]): Promise<void> {
    for (const key of new Set(tailKeys)) if (key) await this.objects.delete(key);
  }

  private async digestOfObject(key: string, algorithm: string): Promise<string> {
    const hash = createHash(algorithm);
    for await (const chunk of await this.objects.stream(key)) hash.update(chunk);
    return `${algorithm}:${hash.digest('hex')}`;
  }

  private async newSession(repository: string): Promise<UploadSession> {
    const digest = await ResumableDigest.start();
    return {
      id: randomUUID(),
      repository,
      offset: 0,
      hashState: digest.save(),
      partETags: [],
      tailSize: 0,
      version: 1,
      createdAt: Date.now(),
      expiresAt: this.expiry(),
    };
  }

  private expiry(): number {
    return Math.floor(Date.now() / 1000) + this.sessionTtlSeconds;
  }
}

const NO_LEASE = { leaseHolder: undefined, leaseUntil: undefined };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function isUploadId(id: string): boolean {
  return UUID.test(id);
}

function digestAlgorithm(expected: string): DigestAlgorithm {
  const claimed = parseDigest(expected);
  if (!claimed) throw new RegistryError('DIGEST_INVALID', 'invalid or unsupported digest', { detail: { digest: expected } });
  return claimed.algorithm;
}

function checkStart(session: UploadSession, range: ChunkRange | undefined): void {
  if (range && range.start !== session.offset) throw rangeError(session, 'chunk does not start where the upload ends');
}

export function uploadRange(session: UploadSession): string {
  return `0-${Math.max(session.offset - 1, 0)}`;
}

function rangeError(session: UploadSession, message: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_INVALID', message, {
    status: 416,
    detail: { expectedStart: session.offset },
    headers: { Range: uploadRange(session) },
  });
}

function digestMismatch(expected: string, actual: string): RegistryError {
  return new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', {
    detail: { expected, actual },
  });
}
