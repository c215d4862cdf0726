import { randomUUID } from 'node:crypto';
import type { BodyStream } from '../../model/http.js';
import { RegistryError } from '../../model/oci/errors.js';
import { parseDigest, type DigestAlgorithm } from '../../model/oci/grammar.js';
import { BlobGoneError, type BlobIndex, type BlobRecord } from '../../storage/blob-index.js';
import type { BlobObjectStore } from '../../storage/blob-object-store.js';
import type { UploadSession, UploadSessionStore } from '../../storage/upload-session-store.js';
import { retryingConflicts } from '../../storage/dynamo-errors.js';
import type { Received, UploadWriter } from './upload-writer.js';

export interface ChunkRange {
  start: number;
  end: number;
}

/**
 * How long a writing request holds its session, and how often it renews the hold while its
 * body streams. A request whose process dies (SIGKILL, a Lambda timeout, an out-of-memory kill)
 * stops renewing, and its lease lapses within `leaseMs`; a request for the session meanwhile
 * waits for that rather than failing.
 */
export interface LeaseTiming {
  leaseMs: number;
  renewEveryMs: number;
}

export const DEFAULT_LEASE: LeaseTiming = { leaseMs: 15_000, renewEveryMs: 5_000 };

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
    private readonly leaseTiming: LeaseTiming = DEFAULT_LEASE,
  ) {}

  /** `algorithm`: the digest the finish will name (`?digest-algorithm=`), hashed as the bytes come. */
  async open(repository: string, algorithm: DigestAlgorithm = 'sha256'): Promise<UploadSession> {
    const session = this.newSession(repository, algorithm);
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
   * session ends (416 otherwise) and its length must match (400 otherwise). One conditional
   * write saves the result; the lease is taken only when the request needs it (SessionLease).
   */
  async append(session: UploadSession, body: BodyStream | undefined, range?: ChunkRange): Promise<UploadSession> {
    const lease = await this.lease(session, range);
    const written = await this.receive(lease, body, range, false);
    const held = await lease.stop();
    const next = { ...written.session, ...NO_LEASE, version: held.version + 1, expiresAt: this.expiry() };
    if (!(await this.sessions.save(next))) {
      await this.writer.dropUnsaved(lease.base, written);
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
    return this.conclude(await this.lease(session, range), body, expected, algorithm, range);
  }

  /** POST with `?digest=` and the whole blob as its body: a session that is never saved. */
  async uploadWhole(repository: string, body: BodyStream | undefined, expected: string): Promise<BlobRecord> {
    const algorithm = digestAlgorithm(expected);
    const session = this.newSession(repository, algorithm);
    return this.conclude(
      new SessionLease(this.sessions, session, this.leaseTiming, () => rangeError(session, ''), false),
      body,
      expected,
      algorithm,
      undefined,
    );
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

  /**
   * The finish: receive the last bytes, prove the digest (from the hash kept as the bytes came,
   * or by reading the assembled object back when it could not be kept), assemble, then one
   * transaction records and links the blob and ends the session.
   */
  private async conclude(
    lease: SessionLease,
    body: BodyStream | undefined,
    expected: string,
    algorithm: DigestAlgorithm,
    range: ChunkRange | undefined,
  ): Promise<BlobRecord> {
    // The last bytes are never saved to the session: it ends here, or the retry sends them again.
    const written = await this.receive(lease, body, range, true);
    const pending = written.pending!;
    const hashedAs = lease.base.algorithm ?? 'sha256';
    const known = algorithm === hashedAs ? pending.digest : undefined;
    try {
      if (known !== undefined && known !== expected) throw digestMismatch(expected, known);
      const assembled = await this.writer.assemble(pending, expected);
      if (known === undefined) {
        // Bytes that could not be hashed as they came (they followed a natively hashed body), or
        // another algorithm than the session's (no `digest-algorithm` at open): read back once.
        const actual = await this.writer.digestOfObject(assembled.objectKey, algorithm);
        if (actual !== expected) {
          // An object the session names is cleaned up with the session, below.
          if (!pending.inPlace) await this.objects.delete(assembled.objectKey);
          throw digestMismatch(expected, actual);
        }
      }
      const held = await lease.stop();
      const record = await this.commit(lease.base.repository, assembled, lease.stored ? { session: lease.base, version: held.version } : undefined);
      // Unless the tail is the blob now (this finish's, or a concurrent finish's of the same session).
      if (lease.base.tailKey && lease.base.tailKey !== record.objectKey) await this.objects.delete(lease.base.tailKey);
      return record;
    } catch (error) {
      // Nothing can come of this session any more: end it, so a retry starts afresh.
      if (error instanceof CollectedWhileStoredError || (error instanceof RegistryError && error.code === 'DIGEST_INVALID')) {
        const held = await lease.stop();
        await this.writer.dropUnsaved(lease.base, written);
        // Only if no other request changed or ended the session since: a concurrent finish of it
        // may have recorded the object the session names as its blob.
        if (lease.stored && (await this.sessions.end(lease.base.id, held.version))) await this.writer.discard(lease.base);
      } else {
        await this.abandon(lease, written);
      }
      throw error;
    }
  }

  /**
   * Records a new blob, links it and ends the session in one transaction. When the blob is
   * recorded already, the slower recordAndLink sorts it out; when the session changed since it
   * was read (a request took and released its lease), the transaction runs again on the new
   * version if the session still holds the same bytes; when it is gone, a concurrent finish of
   * the same upload ended it, and its blob is the answer.
   */
  private async commit(repository: string, assembled: BlobRecord, end?: { session: UploadSession; version: number }): Promise<BlobRecord> {
    let version = end?.version ?? 0;
    for (let attempt = 1; ; attempt++) {
      const alongside = end ? [this.sessions.endWrite(end.session.id, version)] : [];
      const outcome = await retryingConflicts(() => this.blobs.recordNewAndLink(repository, assembled, alongside), 'the blob being recorded');
      if (outcome === 'recorded') return assembled;
      if (outcome === 'exists') {
        const record = await this.recordAndLink(repository, assembled);
        if (end) await this.sessions.delete(end.session.id);
        return record;
      }
      const now = end && (await this.sessions.get(end.session.id));
      if (!end || !now) {
        const linked = await this.blobs.getLink(repository, assembled.digest);
        if (linked) return linked;
        throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'upload unknown to registry', { detail: { uuid: end?.session.id } });
      }
      if (!sameBytes(now, end.session) || isHeld(now) || attempt === COMMIT_ATTEMPTS)
        throw rangeError(now, 'the upload was changed by another request');
      version = now.version;
    }
  }

  /**
   * Records the assembled blob and links it. When the same bytes are recorded already, the
   * existing object is linked and ours dropped, unless GC has claimed it: then ours replaces it.
   * The one way a proven blob becomes visible: direct uploads (direct-upload-service.ts) use it too.
   */
  async recordAndLink(repository: string, assembled: BlobRecord): Promise<BlobRecord> {
    for (;;) {
      let recorded: { created: boolean; record: BlobRecord };
      try {
        recorded = await this.blobs.recordBlob(assembled);
      } catch (error) {
        if (error instanceof BlobGoneError) throw collectedWhileStored(assembled);
        throw error;
      }
      const { created, record } = recorded;
      if (created || record.objectKey === assembled.objectKey) {
        if (await this.linkIfLive(repository, record)) return record;
        throw collectedWhileStored(record);
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
  private async receive(lease: SessionLease, body: BodyStream | undefined, range: ChunkRange | undefined, finishing: boolean): Promise<Received> {
    let written: Received | undefined;
    try {
      written = await this.writer.receive(lease.base, lease.guard(body), {
        finishing,
        chunked: range !== undefined,
        beforeSharedWrite: () => lease.acquire(),
      });
      if (range && written.received !== range.end - range.start + 1) {
        throw new RegistryError('BLOB_UPLOAD_INVALID', 'chunk length does not match Content-Range', {
          detail: { range: `${range.start}-${range.end}`, received: written.received },
        });
      }
      return written;
    } catch (error) {
      await this.abandon(lease, written);
      throw error;
    }
  }

  /**
   * Readies the session for one writing request. While another request holds it, waits for that
   * lease to lapse (a holder that died stops renewing); 416 if its holder is still renewing it,
   * or if the chunk does not start where the session, as then stored, ends. The lease itself is
   * taken later, and only when needed (SessionLease).
   */
  private async lease(session: UploadSession, range: ChunkRange | undefined): Promise<SessionLease> {
    if (session.direct) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'this is a direct upload: its bytes go to S3, not in PATCH or PUT (docs/direct-push.md)');
    }
    let current = session;
    if (isHeld(current)) {
      await sleep(Math.min((current.leaseUntil ?? 0) - Date.now(), this.leaseTiming.leaseMs) + LAPSE_MARGIN_MS);
      const reread = await this.sessions.get(session.id);
      if (!reread || reread.repository !== session.repository) {
        throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'upload unknown to registry', { detail: { uuid: session.id } });
      }
      current = reread;
      // Still held: its holder renewed it, so it is alive and writing.
      if (isHeld(current)) throw rangeError(current, 'another request is writing to this upload');
    }
    checkStart(current, range);
    return new SessionLease(this.sessions, current, this.leaseTiming, () => rangeError(current, 'another request took over this upload'));
  }

  /** After a failed request: drop what it wrote that the session does not name, and free the session. */
  private async abandon(lease: SessionLease, written: Received | undefined): Promise<void> {
    await this.writer.dropUnsaved(lease.base, written);
    await lease.release();
  }

  private newSession(repository: string, algorithm: DigestAlgorithm): UploadSession {
    return {
      id: randomUUID(),
      repository,
      offset: 0,
      ...(algorithm === 'sha256' ? {} : { algorithm }),
      partCount: 0,
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
/** Past a lease's end, how long a waiting request gives a slow renewal to land. */
const LAPSE_MARGIN_MS = 1_000;

function isHeld(session: UploadSession): boolean {
  return session.leaseHolder !== undefined && (session.leaseUntil ?? 0) > Date.now();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(ms, 0)));
}

/**
 * One request's hold on a session, taken only when needed: before the request writes into the
 * session's own multipart upload (which another request could write too), or once its body has
 * lasted `renewEveryMs` (so that a request for the session meanwhile waits for it). A short
 * request that writes only what no other request names (a fresh tail, a multipart upload of its
 * own) never takes it: its one conditional save orders it against the others. Once taken, the
 * lease is renewed on a timer (one conditional write every `renewEveryMs`), each renewal bumping
 * the version so the request's final save builds on the last one. If taking or renewing finds
 * the session changed, the lease is lost (another request took over): the body is cut off with 416.
 */
class SessionLease {
  private current: UploadSession;
  private renewing: Promise<void> = Promise.resolve();
  private acquiring: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout | undefined;
  private held = false;
  private stopped = false;
  private lost = false;

  /** `stored`: false for an upload that is never saved (POST ?digest=): nothing to lease. */
  constructor(
    private readonly sessions: UploadSessionStore,
    readonly base: UploadSession,
    private readonly timing: LeaseTiming,
    private readonly lostError: () => RegistryError,
    readonly stored = true,
  ) {
    this.current = base;
    if (!stored) return;
    this.timer = setInterval(() => {
      this.renewing = this.renewing.then(() => (this.held ? this.renew() : this.acquire().catch(() => undefined)));
    }, timing.renewEveryMs);
    this.timer.unref();
  }

  /** Takes the lease if not taken yet; 416 if the session changed since it was read. */
  async acquire(): Promise<void> {
    this.acquiring ??= (async () => {
      if (!this.stored || this.stopped) return;
      const leased = { ...this.current, leaseHolder: randomUUID(), leaseUntil: Date.now() + this.timing.leaseMs, version: this.current.version + 1 };
      if (await this.sessions.save(leased)) {
        this.current = leased;
        this.held = true;
      } else {
        this.lost = true;
      }
    })();
    await this.acquiring;
    if (this.lost) throw this.lostError();
  }

  /** The body, cut off with 416 once the lease is lost. */
  guard(body: BodyStream | undefined): BodyStream {
    const lease = this;
    return (async function* guarded() {
      for await (const chunk of body ?? []) {
        if (lease.lost) throw lease.lostError();
        yield chunk;
      }
    })();
  }

  /** Stops renewing; answers the session as last saved by this request. */
  async stop(): Promise<UploadSession> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.renewing;
    await this.acquiring?.catch(() => undefined);
    return this.current;
  }

  /** After a failure: frees the session if this request held it. Best effort: an unreleased lease lapses by itself, within seconds. */
  async release(): Promise<void> {
    const held = await this.stop();
    if (this.held) await this.sessions.save({ ...held, ...NO_LEASE, version: held.version + 1 }).catch(() => false);
  }

  private async renew(): Promise<void> {
    if (this.stopped || this.lost) return;
    const renewed = { ...this.current, leaseUntil: Date.now() + this.timing.leaseMs, version: this.current.version + 1 };
    try {
      if (await this.sessions.save(renewed)) this.current = renewed;
      else this.lost = true;
    } catch {
      // A failed write (throttling, a network error): the next tick tries again.
    }
  }
}

/** The two sessions hold the same bytes: nothing was appended between the two reads. */
function sameBytes(a: UploadSession, b: UploadSession): boolean {
  return a.offset === b.offset && a.multipartUploadId === b.multipartUploadId && a.tailKey === b.tailKey;
}

const COMMIT_ATTEMPTS = 3;

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

/**
 * GC claimed the record of this upload's own object and is deleting the object: only a grace
 * period shorter than the upload allows that (docs/garbage-collection.md). The session ends.
 */
class CollectedWhileStoredError extends RegistryError {}

function collectedWhileStored(blob: BlobRecord): RegistryError {
  return new CollectedWhileStoredError('BLOB_UPLOAD_INVALID', 'garbage collection removed the blob while it was being stored; upload it again', {
    detail: { digest: blob.digest },
  });
}

function rangeError(session: UploadSession, message: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_INVALID', message, {
    refusal: 'outOfOrder',
    detail: { expectedStart: session.offset },
    uploadReceived: session.offset,
  });
}

function digestMismatch(expected: string, actual: string): RegistryError {
  return new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', {
    detail: { expected, actual },
  });
}
