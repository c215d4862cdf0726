import type { BodyStream } from '../http/types.js';
import { createHash, randomUUID } from 'node:crypto';
import { RegistryError } from '../oci/errors.js';
import { parseDigest } from '../oci/grammar.js';
import type { BlobIndex, BlobRecord } from '../storage/blob-index.js';
import type { BlobObjectStore } from '../storage/blob-object-store.js';
import type { UploadSession, UploadSessionStore } from '../storage/upload-session-store.js';
import { ResumableDigest } from './resumable-digest.js';
import type { UploadWriter } from './upload-writer.js';

export interface ChunkRange {
  start: number;
  end: number;
}

/**
 * The lifecycle of a blob upload: open, append (streamed or in chunks), finish with digest
 * verification, cancel. Every outcome leaves storage consistent: a blob becomes visible only
 * once its bytes are assembled and its digest is proven.
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
   * session ends, and its length must match; otherwise 416 or 400 and the session is unchanged.
   */
  async append(session: UploadSession, body: BodyStream | undefined, range?: ChunkRange): Promise<UploadSession> {
    const result = await this.receive(session, body, range);
    if (result.received === 0) return session;
    const next = { ...result.session, version: session.version + 1, expiresAt: this.expiry() };
    if (!(await this.sessions.save(next))) {
      if (result.session.tailKey) await this.objects.delete(result.session.tailKey);
      throw rangeError(session, 'another request changed this upload concurrently');
    }
    if (result.replacedTailKey) await this.objects.delete(result.replacedTailKey);
    return next;
  }

  /**
   * Takes the last bytes (if any), proves the digest and makes the blob visible in the
   * repository. A mismatch answers DIGEST_INVALID, ends the session and leaves nothing stored.
   */
  async finish(
    session: UploadSession,
    body: BodyStream | undefined,
    expected: string,
    range?: ChunkRange,
  ): Promise<BlobRecord> {
    const claimed = parseDigest(expected);
    if (!claimed) throw new RegistryError('DIGEST_INVALID', 'invalid or unsupported digest', { detail: { digest: expected } });
    // The last bytes are not saved to the session: it ends here, or a retry sends them again.
    const { session: complete, replacedTailKey } = await this.receive(session, body, range);
    try {
      if (claimed.algorithm === 'sha256') {
        const actual = await this.writer.digestOf(complete);
        if (actual !== expected) throw digestMismatch(expected, actual);
        const existing = await this.blobs.getBlob(expected);
        if (existing) return await this.linkExisting(complete, existing);
        return await this.record(complete, await this.writer.assemble(complete, expected));
      }
      // The resumable state is SHA-256 only: other algorithms are proven on the assembled object.
      const assembled = await this.writer.assemble(complete, expected);
      const actual = await this.digestOfObject(assembled.objectKey, claimed.algorithm);
      if (actual !== expected) {
        await this.objects.delete(assembled.objectKey);
        throw digestMismatch(expected, actual);
      }
      return await this.record(complete, assembled);
    } catch (error) {
      if (error instanceof RegistryError && error.code === 'DIGEST_INVALID') await this.cancel(complete);
      throw error;
    } finally {
      if (replacedTailKey) await this.objects.delete(replacedTailKey);
    }
  }

  /** POST with `?digest=` and the whole blob as its body. */
  async uploadWhole(repository: string, body: BodyStream | undefined, expected: string): Promise<BlobRecord> {
    const session = await this.newSession(repository);
    return this.finish(session, body ?? [], expected);
  }

  async cancel(session: UploadSession): Promise<void> {
    await this.writer.discard(session);
    await this.sessions.delete(session.id);
  }

  /** Links a blob of `from` into `repository`; answers undefined when `from` does not hold it. */
  async mount(repository: string, from: string, digest: string): Promise<BlobRecord | undefined> {
    const source = await this.blobs.getLink(from, digest);
    if (!source) return undefined;
    await this.blobs.link(repository, source);
    return source;
  }

  private async receive(session: UploadSession, body: BodyStream | undefined, range?: ChunkRange) {
    if (range && range.start !== session.offset) throw rangeError(session, 'chunk does not start where the upload ends');
    const result = await this.writer.append(session, body ?? []);
    if (range && result.received !== range.end - range.start + 1) {
      if (result.session.tailKey !== session.tailKey && result.session.tailKey) await this.objects.delete(result.session.tailKey);
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'chunk length does not match Content-Range', {
        detail: { range: `${range.start}-${range.end}`, received: result.received },
      });
    }
    return result;
  }

  /** Records the assembled blob; when a concurrent upload of the same bytes won, ours is dropped. */
  private async record(session: UploadSession, assembled: BlobRecord): Promise<BlobRecord> {
    const { created, record } = await this.blobs.recordBlob(assembled);
    if (!created) await this.objects.delete(assembled.objectKey);
    await this.blobs.link(session.repository, record);
    await this.sessions.delete(session.id);
    return record;
  }

  private async linkExisting(session: UploadSession, existing: BlobRecord): Promise<BlobRecord> {
    await this.writer.discard(session);
    await this.blobs.link(session.repository, existing);
    await this.sessions.delete(session.id);
    return existing;
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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function isUploadId(id: string): boolean {
  return UUID.test(id);
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
