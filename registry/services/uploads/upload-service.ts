import { createHash, randomUUID } from 'node:crypto';
import type { BodyStream } from '../../model/http.js';
import { RegistryError } from '../../model/oci/errors.js';
import { parseDigest, type DigestAlgorithm } from '../../model/oci/grammar.js';
import { BlobGoneError, type BlobIndex, type BlobRecord } from '../../storage/blob-index.js';
import type { BlobObjectStore } from '../../storage/blob-object-store.js';
import type { UploadSession, UploadSessionStore } from '../../storage/upload-session-store.js';
import { ResumableDigest } from './resumable-digest.js';
import type { AppendResult, UploadWriter } from './upload-writer.js';

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
    const session = await this.newSession(repository, algorithm);
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
    const lease = await this.lease(session, range);
    const written = await this.receive(lease.leased, lease.guard(body), range, lease);
    const held = await lease.stop();
    const next = { ...written.session, ...NO_LEASE, version: held.version + 1, expiresAt: this.expiry() };
    if (!(await this.sessions.save(next))) {
      await this.dropNewTail(lease.leased, written);
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
    const lease = await this.lease(session, range);
    return this.conclude(lease.leased, lease.guard(body), expected, algorithm, range, lease);
  }

  /** POST with `?digest=` and the whole blob as its body: a session that is never saved. */
  async uploadWhole(repository: string, body: BodyStream | undefined, expected: string): Promise<BlobRecord> {
    const algorithm = digestAlgorithm(expected);
    return this.conclude(await this.newSession(repository, algorithm), body, expected, algorithm, undefined);
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
    lease?: SessionLease,
  ): Promise<BlobRecord> {
    // The last bytes are never saved to the session: it ends here, or the retry sends them again.
    const written = await this.receive(session, body, range, lease, true);
    const complete = written.session;
    try {
      const record = await this.prove(complete, expected, algorithm);
      await lease?.stop();
      await this.sessions.delete(session.id);
      await this.deleteTails(session.tailKey, complete.tailKey);
      return record;
    } catch (error) {
      // Nothing can come of this session any more: end it, so a retry starts afresh.
      if (error instanceof CollectedWhileStoredError || (error instanceof RegistryError && error.code === 'DIGEST_INVALID')) {
        await lease?.stop();
        await this.cancel(complete);
        await this.deleteTails(session.tailKey);
      } else {
        await this.abandon(session, written, lease);
      }
      throw error;
    }
  }

  /** Verifies the digest, assembles the object and records and links the blob. */
  private async prove(session: UploadSession, expected: string, algorithm: DigestAlgorithm): Promise<BlobRecord> {
    let assembled: BlobRecord;
    if (algorithm === (session.algorithm ?? 'sha256')) {
      const actual = await this.writer.digestOf(session);
      if (actual !== expected) throw digestMismatch(expected, actual);
      const existing = await this.blobs.getBlob(expected);
      if (existing && existing.objectKey !== this.writer.objectKeyOf(session) && (await this.linkIfLive(session.repository, existing))) {
        await this.writer.discard(session);
        return existing;
      }
      assembled = await this.writer.assemble(session, expected);
    } else {
      // The session hashed with another algorithm (the client did not say `digest-algorithm`
      // when it opened it): the assembled object is read back once to prove this one.
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

  /**
   * Streams the body in and checks it against the range; on failure, undoes what it wrote.
   * A finish retried after an earlier attempt assembled the object (and then died, or failed,
   * before the blob was recorded) only hashes the last bytes again: the multipart upload is
   * complete and takes no more parts, and the object holds them already.
   */
  private async receive(
    session: UploadSession,
    body: BodyStream | undefined,
    range: ChunkRange | undefined,
    lease: SessionLease | undefined,
    finishing = false,
  ): Promise<AppendResult> {
    let written: AppendResult | undefined;
    try {
      const assembled = finishing && lease !== undefined && (await this.writer.isAssembled(session));
      written = assembled ? await this.writer.replay(session, body ?? []) : await this.writer.append(session, body ?? []);
      if (range && written.received !== range.end - range.start + 1) {
        throw new RegistryError('BLOB_UPLOAD_INVALID', 'chunk length does not match Content-Range', {
          detail: { range: `${range.start}-${range.end}`, received: written.received },
        });
      }
      return written;
    } catch (error) {
      await this.abandon(session, written, lease);
      throw error;
    }
  }

  /**
   * Takes the session for one writing request. While another request holds it, waits for that
   * lease to lapse (a holder that died stops renewing); 416 if its holder is still renewing it,
   * or if the chunk does not start where the session, as then stored, ends.
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
    const leased = { ...current, leaseHolder: randomUUID(), leaseUntil: Date.now() + this.leaseTiming.leaseMs, version: current.version + 1 };
    if (!(await this.sessions.save(leased))) throw rangeError(current, 'the upload was changed by another request');
    return new SessionLease(this.sessions, leased, this.leaseTiming, () => rangeError(current, 'another request took over this upload'));
  }

  /** After a failed request: drop what it wrote that the session does not name, and free the session. */
  private async abandon(session: UploadSession, written: AppendResult | undefined, lease: SessionLease | undefined): Promise<void> {
    await this.dropNewTail(session, written);
    if (lease) {
      const held = await lease.stop();
      // Best effort: an unreleased lease lapses by itself, within seconds.
      await this.sessions.save({ ...held, ...NO_LEASE, version: held.version + 1 }).catch(() => false);
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

  private async newSession(repository: string, algorithm: DigestAlgorithm): Promise<UploadSession> {
    const digest = await ResumableDigest.start(undefined, algorithm);
    return {
      id: randomUUID(),
      repository,
      offset: 0,
      ...(algorithm === 'sha256' ? {} : { algorithm }),
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
/** Past a lease's end, how long a waiting request gives a slow renewal to land. */
const LAPSE_MARGIN_MS = 1_000;

function isHeld(session: UploadSession): boolean {
  return session.leaseHolder !== undefined && (session.leaseUntil ?? 0) > Date.now();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(ms, 0)));
}

/**
 * One request's hold on a session: renewed on a timer (not per chunk: one conditional write
 * every `renewEveryMs`) until stopped. Every renewal bumps the version, so the request's final
 * save builds on the last one. If a renewal finds the session changed, the lease was lost (this
 * request stalled past its lease and another took over): the body is cut off with 416.
 */
class SessionLease {
  private current: UploadSession;
  private renewing: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;
  private stopped = false;
  private lost = false;

  constructor(
    private readonly sessions: UploadSessionStore,
    readonly leased: UploadSession,
    private readonly timing: LeaseTiming,
    private readonly lostError: () => RegistryError,
  ) {
    this.current = leased;
    this.timer = setInterval(() => {
      this.renewing = this.renewing.then(() => this.renew());
    }, timing.renewEveryMs);
    this.timer.unref();
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
    return this.current;
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
