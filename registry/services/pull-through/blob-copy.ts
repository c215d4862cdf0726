import { randomUUID } from 'node:crypto';
import { RegistryError } from '../../model/oci/errors.js';
import type { CacheTarget, Upstream } from '../../model/pull-through/upstream.js';
import { UpstreamError } from '../../model/pull-through/upstream-error.js';
import { BlobGoneError, type BlobIndex, type BlobRecord } from '../../storage/blob-index.js';
import type { BlobPullLease, PullLeaseStore } from '../../storage/pull-lease-store.js';
import type { UploadSession } from '../../storage/upload-session-store.js';
import type { Logger } from '../../support/logger.js';
import type { UploadService } from '../uploads/upload-service.js';
import { recordPullThrough } from './metrics.js';
import { refusalOfUpstreamError } from './upstream-refusals.js';
import type { UpstreamClient } from './upstream-client.js';

/** What the copier is asked to do: never the redirect URL (it reads the lease). */
export interface CopyRequest {
  digest: string;
  repository: string;
  upstream: string;
}

/** Hands a copy to the background copier (copy-dispatcher.ts). */
export type CopyDispatch = (request: CopyRequest) => Promise<void>;

/** A blob of a cache repository: stored (and linked) here, or the upstream's own redirect to hand on. */
export type CacheBlob = { kind: 'stored'; blob: BlobRecord } | { kind: 'redirect'; location: string };

export interface BlobCopySettings {
  /** How long a pull waits for a copy before it answers 429 (PULL_THROUGH_WAIT_MS). */
  waitMs: number;
  /** A copying holder's lease and how often it renews it. */
  leaseMs: number;
  renewEveryMs: number;
  /** A dispatched copy's lease: the copier has this long to claim it. */
  dispatchedMs: number;
  /** How long the upstream's blob redirect is handed to followers (redirect URLs live minutes). */
  redirectMs: number;
  /** How long wrong bytes are remembered, so that retries do not fetch again. */
  failedMs: number;
  /** Bytes per checkpoint: each segment is one chunk of the upload session (its hash state is saved). */
  segmentBytes: number;
  /** How long followers wait between looks, at first (doubling to 1 s). */
  pollMs: number;
  retryAfterSeconds: number;
}

export const DEFAULT_BLOB_COPY: BlobCopySettings = {
  waitMs: 20_000,
  leaseMs: 15_000,
  renewEveryMs: 5_000,
  dispatchedMs: 120_000,
  redirectMs: 60_000,
  failedMs: 5 * 60_000,
  segmentBytes: 16 * 1024 * 1024,
  pollMs: 250,
  retryAfterSeconds: 5,
};

export interface PullThroughBlobDeps {
  blobs: BlobIndex;
  uploads: UploadService;
  leases: PullLeaseStore;
  upstreams: { get(name: string): Promise<Upstream | undefined> };
  client: UpstreamClient;
  dispatch: CopyDispatch;
  logger: Logger;
  settings?: Partial<BlobCopySettings>;
}

const MIB = 1024 * 1024;

/**
 * Blobs of cache repositories (docs/pull-through.md, "Blobs"). A link miss proves the blob the
 * registry holds already (the upstream still serves it to this repository), else takes the
 * blob's pull lease, so that concurrent first pulls make one upstream fetch. The winner hands
 * an upstream redirect on and has the copier copy in the background, or, when the upstream
 * streams, copies into an upload session first (bounded by `waitMs`, then 429 and the copier
 * resumes from the session's checkpoint with a Range request). The copy is an ordinary upload:
 * the digest is proven as the bytes stream, and the finish records and links the blob as any
 * finished upload does; wrong bytes end the session (its multipart upload aborted) and record
 * nothing.
 */
export class PullThroughBlobs {
  private readonly settings: BlobCopySettings;

  constructor(private readonly deps: PullThroughBlobDeps) {
    this.settings = { ...DEFAULT_BLOB_COPY, ...deps.settings };
  }

  /** HEAD on a link miss: the proven blob (now linked), else the upstream's answer, caching nothing. */
  async head(cache: CacheTarget, repository: string, digest: string): Promise<{ size: number; digest: string }> {
    const proven = await this.provenLink(cache, repository, digest);
    if (proven) return proven;
    try {
      return await this.deps.client.headBlob(cache, digest);
    } catch (error) {
      throw this.refusal(error, cache, repository, digest);
    }
  }

  /** GET on a link miss. */
  async get(cache: CacheTarget, repository: string, digest: string): Promise<CacheBlob> {
    const deadline = Date.now() + this.settings.waitMs;
    let provedOnce = false;
    for (let delay = this.settings.pollMs; ; delay = Math.min(delay * 2, 1_000)) {
      const linked = await this.deps.blobs.getLink(repository, digest);
      if (linked) return { kind: 'stored', blob: linked };
      const lease = await this.deps.leases.get(digest);
      const now = Date.now();
      if (lease && lease.leaseUntil > now) {
        if (lease.phase === 'failed') throw corruptRefusal(cache.upstream.name, digest);
        if (lease.redirectUrl && (lease.redirectUntil ?? 0) > now) return { kind: 'redirect', location: lease.redirectUrl };
        if (now >= deadline) throw await this.busy(lease);
        await sleep(delay);
        continue;
      }
      if (!provedOnce) {
        provedOnce = true;
        const proven = await this.provenLink(cache, repository, digest);
        if (proven) return { kind: 'stored', blob: proven };
      }
      const taken = await this.deps.leases.take(
        {
          digest,
          holder: randomUUID(),
          leaseUntil: now + this.settings.leaseMs,
          upstream: cache.upstream.name,
          repository,
          upstreamPath: cache.upstreamPath,
          phase: 'fetching',
        },
        lease,
        now,
      );
      if (taken) return this.fetchAsWinner(cache, taken, deadline);
    }
  }

  /**
   * The copier: claims a dispatched lease and copies the blob, resuming from the upload session
   * it names with `Range`, until done or `deadline`; then it checkpoints and dispatches itself
   * again. A lease someone else holds, or none, is left alone.
   */
  async copy(request: CopyRequest, deadline: number): Promise<'done' | 'checkpointed' | 'skipped'> {
    const lease = await this.deps.leases.get(request.digest);
    const now = Date.now();
    if (!lease || lease.phase === 'failed' || (lease.phase !== 'dispatched' && lease.leaseUntil > now)) return 'skipped';
    const claimed = {
      ...lease,
      holder: randomUUID(),
      phase: 'copying' as const,
      leaseUntil: now + this.settings.leaseMs,
      version: lease.version + 1,
    };
    if (!(await this.deps.leases.save(claimed))) return 'skipped';
    const upstream = await this.deps.upstreams.get(lease.upstream);
    if (!upstream) {
      await this.deps.leases.end(lease.digest, claimed.version);
      return 'skipped';
    }
    const cache: CacheTarget = { upstream, upstreamPath: lease.upstreamPath };
    const run = new LeaseRun(this.deps.leases, claimed, this.settings);
    let session = lease.uploadId ? await this.deps.uploads.get(lease.repository, lease.uploadId).catch(() => undefined) : undefined;
    const abort = new AbortController();
    try {
      const source = await this.deps.client.getBlob(cache, request.digest, {
        followRedirects: true,
        ...(session && session.offset > 0 ? { rangeStart: session.offset } : {}),
        signal: abort.signal,
      });
      if (source.kind === 'redirect') throw new UpstreamError('unavailable', upstream.name, `upstream ${upstream.name} redirected too often`);
      const reader = new SegmentReader(source.body);
      if (session && session.offset > 0 && source.status !== 206) {
        // The upstream ignored the Range: start again from the first byte.
        await this.deps.uploads.cancel(session);
        session = undefined;
      }
      const outcome = await this.copyBody(cache, run, session, { size: source.size, reader }, deadline, abort);
      if (outcome === 'done') return 'done';
      await this.deps.dispatch(request);
      return 'checkpointed';
    } catch (error) {
      await run.release();
      this.deps.logger.warn('pull-through copy failed', { upstream: upstream.name, digest: request.digest, error: String(error) });
      throw error;
    } finally {
      abort.abort();
    }
  }

  /** The lease is ours: ask the upstream, and hand its redirect on or copy its bytes first. */
  private async fetchAsWinner(cache: CacheTarget, lease: BlobPullLease, deadline: number): Promise<CacheBlob> {
    const run = new LeaseRun(this.deps.leases, lease, this.settings);
    const abort = new AbortController();
    const request = { digest: lease.digest, repository: lease.repository, upstream: cache.upstream.name };
    try {
      const source = await this.deps.client.getBlob(cache, lease.digest, { followRedirects: false, signal: abort.signal });
      if (source.kind === 'redirect') {
        const now = Date.now();
        // Real CDNs answer absolute URLs; a relative one is the upstream's own.
        const location = new URL(source.location, `${cache.upstream.url}/v2/`).toString();
        await run.update({ phase: 'dispatched', redirectUrl: location, redirectUntil: now + this.settings.redirectMs }, this.settings.dispatchedMs);
        await run.stop();
        await this.deps.dispatch(request);
        recordPullThrough(this.deps.logger, { upstream: cache.upstream.name, event: 'miss', repository: lease.repository, reference: lease.digest });
        return { kind: 'redirect', location };
      }
      const outcome = await this.copyBody(cache, run, undefined, { size: source.size, reader: new SegmentReader(source.body) }, deadline, abort);
      if (outcome !== 'done') {
        await this.deps.dispatch(request);
        throw await this.busy(run.lease);
      }
      const blob = await this.deps.blobs.getLink(lease.repository, lease.digest);
      if (!blob) throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest: lease.digest } });
      return { kind: 'stored', blob };
    } catch (error) {
      await run.release();
      if (error instanceof RegistryError) throw error;
      throw this.refusal(error, cache, lease.repository, lease.digest);
    } finally {
      abort.abort();
    }
  }

  /**
   * Streams the upstream's bytes into an upload session, one checkpointed segment at a time,
   * then finishes it (digest proven, blob recorded and linked) and ends the lease. Answers
   * `checkpointed` at the deadline, with the lease `dispatched` for the copier; wrong or missing
   * bytes end the session and mark the lease `failed`.
   */
  private async copyBody(
    cache: CacheTarget,
    run: LeaseRun,
    resumed: UploadSession | undefined,
    source: { size?: number; reader: SegmentReader },
    deadline: number,
    abort: AbortController,
  ): Promise<'done' | 'checkpointed'> {
    const { digest, repository } = run.lease;
    const started = Date.now();
    let session = resumed ?? (await this.deps.uploads.open(repository));
    const from = session.offset;
    const size = source.size !== undefined ? from + source.size : (await this.deps.client.headBlob(cache, digest)).size;
    if (session.id !== run.lease.uploadId || run.lease.size !== size) await run.update({ uploadId: session.id, size });
    const { reader } = source;
    try {
      while (session.offset < size) {
        if (Date.now() >= deadline) {
          abort.abort();
          await run.update({ phase: 'dispatched', redirectUrl: undefined, redirectUntil: undefined }, this.settings.dispatchedMs);
          await run.stop();
          return 'checkpointed';
        }
        run.check();
        const length = Math.min(this.settings.segmentBytes, size - session.offset);
        session = await this.deps.uploads.append(session, reader.take(length), { start: session.offset, end: session.offset + length - 1 });
      }
      run.check();
      await this.deps.uploads.finish(session, undefined, digest);
    } catch (error) {
      const corrupt = error instanceof ShortBodyError || (error instanceof RegistryError && error.code === 'DIGEST_INVALID');
      if (!corrupt) throw error;
      // A finish that found other bytes has ended the session already; a short body has not.
      if (error instanceof ShortBodyError) {
        this.deps.logger.warn('pull-through short body', { upstream: cache.upstream.name, digest, size, error: error.message });
        await this.deps.uploads.cancel(session).catch(() => undefined);
      }
      await run.update(
        { phase: 'failed', failure: 'digest', uploadId: undefined, redirectUrl: undefined, redirectUntil: undefined },
        this.settings.failedMs,
      );
      await run.stop();
      recordPullThrough(this.deps.logger, {
        upstream: cache.upstream.name,
        event: 'upstreamError',
        repository,
        reference: digest,
        errorKind: 'digest',
      });
      throw corruptRefusal(cache.upstream.name, digest, error instanceof RegistryError ? (error.detail as { actual?: string })?.actual : undefined);
    }
    await run.stop();
    await this.deps.leases.end(digest, run.lease.version);
    recordPullThrough(this.deps.logger, {
      upstream: cache.upstream.name,
      event: 'miss',
      repository,
      reference: digest,
      bytes: size - from,
      ms: Date.now() - started,
    });
    return 'done';
  }

  /**
   * The blob the registry holds already, linked into this repository once the upstream confirms
   * the repository has it (an uncounted HEAD): another repository's content is never linked
   * without that proof. Undefined when the registry does not hold it, or the upstream cannot say.
   */
  private async provenLink(cache: CacheTarget, repository: string, digest: string): Promise<BlobRecord | undefined> {
    const blob = await this.deps.blobs.getBlob(digest);
    if (!blob) return undefined;
    try {
      await this.deps.client.headBlob(cache, digest);
    } catch (error) {
      if (error instanceof UpstreamError && error.kind === 'notFound') throw this.refusal(error, cache, repository, digest);
      return undefined;
    }
    try {
      await this.deps.blobs.link(repository, blob);
      return blob;
    } catch (error) {
      if (error instanceof BlobGoneError) return undefined;
      throw error;
    }
  }

  /** 429 while another request or the copier copies: how far it got, and when to ask again. */
  private async busy(lease: BlobPullLease): Promise<RegistryError> {
    const session = lease.uploadId ? await this.deps.uploads.get(lease.repository, lease.uploadId).catch(() => undefined) : undefined;
    const progress = session && lease.size ? ` (${Math.floor(session.offset / MIB)} of ${Math.ceil(lease.size / MIB)} MiB)` : '';
    return new RegistryError('TOOMANYREQUESTS', `copying ${lease.digest} from upstream ${lease.upstream}${progress}; retry`, {
      retryAfterSeconds: this.settings.retryAfterSeconds,
      detail: { digest: lease.digest, upstream: lease.upstream },
    });
  }

  private refusal(error: unknown, cache: CacheTarget, repository: string, digest: string): RegistryError {
    if (!(error instanceof UpstreamError)) return error instanceof RegistryError ? error : (error as RegistryError);
    recordPullThrough(this.deps.logger, {
      upstream: cache.upstream.name,
      event: 'upstreamError',
      repository,
      reference: digest,
      errorKind: error.kind,
    });
    return refusalOfUpstreamError(error, { unknown: 'BLOB_UNKNOWN', what: digest });
  }
}

function corruptRefusal(upstream: string, digest: string, actual?: string): RegistryError {
  const served = actual ? `bytes of ${actual}` : 'wrong bytes';
  return new RegistryError('DIGEST_INVALID', `upstream ${upstream} served ${served} for ${digest}; nothing was cached`, {
    refusal: 'upstreamCorrupt',
    detail: { digest, upstream },
  });
}

/** The upstream's body ended before the size it announced. */
class ShortBodyError extends Error {}

/**
 * Cuts one upstream body into segments of exact lengths; a body that ends early is a ShortBodyError.
 * Made as soon as the body arrives: it locks the stream, which fetch would otherwise cancel (a
 * clean, early end) once its Response is garbage collected during the awaits before the first read.
 */
class SegmentReader {
  private readonly iterator: AsyncIterator<Uint8Array>;
  private leftover: Uint8Array | undefined;

  constructor(body: AsyncIterable<Uint8Array>) {
    this.iterator = body[Symbol.asyncIterator]();
  }

  async *take(length: number): AsyncGenerator<Uint8Array> {
    let remaining = length;
    while (remaining > 0) {
      let chunk = this.leftover;
      this.leftover = undefined;
      if (!chunk) {
        const next = await this.iterator.next();
        if (next.done) throw new ShortBodyError(`the upstream body ended ${remaining} bytes early`);
        chunk = next.value;
      }
      if (chunk.byteLength > remaining) {
        this.leftover = chunk.subarray(remaining);
        chunk = chunk.subarray(0, remaining);
      }
      remaining -= chunk.byteLength;
      if (chunk.byteLength > 0) yield chunk;
    }
  }
}

/**
 * One holder's lease while it works: renewed on a timer, changed (phase, checkpoint) through the
 * same chain of conditional saves, and lost when a save finds another version (`check` throws).
 */
class LeaseRun {
  private chain: Promise<unknown> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;
  private lost = false;
  private stopped = false;

  constructor(
    private readonly leases: PullLeaseStore,
    public lease: BlobPullLease,
    private readonly settings: BlobCopySettings,
  ) {
    this.timer = setInterval(() => {
      this.chain = this.chain.then(() => this.saveNext({}, this.settings.leaseMs)).catch(() => undefined);
    }, settings.renewEveryMs);
    this.timer.unref();
  }

  /** Saves a change of the lease; `holdMs` from now it lapses. */
  update(change: Partial<BlobPullLease>, holdMs = this.settings.leaseMs): Promise<void> {
    const next = this.chain.then(() => this.saveNext(change, holdMs));
    this.chain = next.catch(() => undefined);
    return next.then(() => this.check());
  }

  check(): void {
    if (this.lost)
      throw new RegistryError('TOOMANYREQUESTS', `another request took over copying ${this.lease.digest}; retry`, { retryAfterSeconds: 1 });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.chain;
  }

  /** After a failure: the lease lapses at once, so that the next pull tries afresh. */
  async release(): Promise<void> {
    if (this.stopped) return;
    await this.stop();
    if (!this.lost) await this.leases.save({ ...this.lease, leaseUntil: 0, version: this.lease.version + 1 }).catch(() => false);
  }

  private async saveNext(change: Partial<BlobPullLease>, holdMs: number): Promise<void> {
    if (this.lost || (this.stopped && Object.keys(change).length === 0)) return;
    const next = { ...this.lease, ...change, leaseUntil: Date.now() + holdMs, version: this.lease.version + 1 };
    if (await this.leases.save(next)) this.lease = next;
    else this.lost = true;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
