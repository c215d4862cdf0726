import { RegistryError } from '../../model/oci/errors.js';
import { parseDigest } from '../../model/oci/grammar.js';
import { parseManifest, type ParsedManifest } from '../../model/oci/manifest.js';
import type { CacheTarget } from '../../model/pull-through/upstream.js';
import { UpstreamError } from '../../model/pull-through/upstream-error.js';
import { epochDay, type DescribedTag, type ManifestStore, type StoredManifest } from '../../storage/manifest-store.js';
import type { Logger } from '../../support/logger.js';
import type { ManifestService } from '../manifests/manifest-service.js';
import { recordPullThrough, type PullThroughEvent } from './metrics.js';
import type { UpstreamClient } from './upstream-client.js';
import { refusalOfUpstreamError } from './upstream-refusals.js';
import type { TagPullLeases } from '../../storage/tag-pull-leases.js';

/** A cached manifest served because the upstream could not confirm it; api/ writes the `Warning` header. */
export interface StaleServe {
  upstream: string;
  reason: string;
  /** When the upstream last confirmed the tag (ms), if ever. */
  checkedAt?: number;
}

export interface CachedManifest {
  manifest: StoredManifest;
  stale?: StaleServe;
}

export interface ManifestCacheOptions {
  now?: () => number;
  /** How long a request waits for another's fetch of the same tag before doing it itself (default 3 s). */
  followerWaitMs?: number;
  pollMs?: number;
}

/** How long a tag's single-flight lease holds without its holder finishing. */
const TAG_LEASE_MS = 10_000;

/**
 * Manifests of pull-through cache repositories (docs/pull-through.md, "Manifests"): by digest
 * fetched once and kept; by tag served while younger than the upstream's tag TTL, then
 * revalidated with a HEAD (uncounted by Docker Hub) and fetched again only when the digest moved;
 * the cached copy, marked stale, when the upstream fails; the upstream's 404 is a 404. Every
 * fetched manifest is verified against its digest before it is stored. Concurrent misses or
 * revalidations of one tag make one upstream request: the others wait for the tag it writes.
 */
export class ManifestCache {
  private readonly now: () => number;
  private readonly followerWaitMs: number;
  private readonly pollMs: number;

  constructor(
    private readonly manifests: ManifestStore,
    private readonly service: ManifestService,
    private readonly client: UpstreamClient,
    private readonly leases: TagPullLeases,
    private readonly logger: Logger,
    options: ManifestCacheOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.followerWaitMs = options.followerWaitMs ?? 3_000;
    this.pollMs = options.pollMs ?? 250;
  }

  /** The manifest `reference` (a tag or a digest) names in the cache repository `repository`, from the cache or the upstream. */
  async find(target: CacheTarget, repository: string, reference: { tag?: string; digest?: string }): Promise<CachedManifest> {
    if (reference.digest) {
      const cached = await this.manifests.getManifest(repository, reference.digest);
      if (cached) {
        this.record(target, 'hit', repository, reference.digest);
        return { manifest: cached };
      }
      return { manifest: await this.fetch(target, repository, reference.digest, undefined, 'miss') };
    }
    return this.findTag(target, repository, reference.tag!);
  }

  private async findTag(target: CacheTarget, repository: string, tag: string, waited = false): Promise<CachedManifest> {
    const cached = await this.manifests.describeTag(repository, tag);
    if (cached && this.fresh(target, cached)) {
      this.record(target, 'hit', repository, tag);
      return { manifest: await this.served(repository, tag, cached) };
    }
    // A miss or an expired tag: one request asks the upstream, the others wait for what it writes.
    const lease = await this.leases.acquire(repository, tag, TAG_LEASE_MS);
    if (!lease && !waited) {
      const written = await this.waitForTag(target, repository, tag, cached);
      if (written) return written;
    }
    try {
      return cached ? await this.revalidate(target, repository, tag, cached) : { manifest: await this.fetch(target, repository, tag, tag, 'miss') };
    } finally {
      if (lease) await this.leases.release(repository, tag, lease).catch(() => undefined);
    }
  }

  /** Another request holds the tag's lease: its answer once the tag is written fresh, else undefined (do the work). */
  private async waitForTag(
    target: CacheTarget,
    repository: string,
    tag: string,
    before: DescribedTag | undefined,
  ): Promise<CachedManifest | undefined> {
    const deadline = this.now() + this.followerWaitMs;
    while (this.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, this.pollMs));
      const current = await this.manifests.describeTag(repository, tag);
      if (current && this.fresh(target, current) && (current.checkedAt !== before?.checkedAt || current.digest !== before?.digest)) {
        this.record(target, 'hit', repository, tag);
        return { manifest: await this.served(repository, tag, current) };
      }
    }
    return undefined;
  }

  private fresh(target: CacheTarget, tag: DescribedTag): boolean {
    return tag.checkedAt !== undefined && this.now() - tag.checkedAt < target.upstream.tagTtlSeconds * 1000;
  }

  /** The tag expired: a HEAD upstream; the same digest is confirmed, another one fetched, a failure served stale. */
  private async revalidate(target: CacheTarget, repository: string, tag: string, cached: DescribedTag): Promise<CachedManifest> {
    let digest: string | undefined;
    try {
      digest = (await this.client.headManifest(target, tag)).digest;
    } catch (error) {
      return this.upstreamFailed(target, repository, tag, cached, error);
    }
    if (digest === cached.digest) {
      await this.manifests.touchCheckedAt(repository, tag, digest, this.now());
      this.record(target, 'revalidated', repository, tag);
      return { manifest: await this.served(repository, tag, cached) };
    }
    try {
      return { manifest: await this.fetch(target, repository, tag, tag, 'refetched', true) };
    } catch (error) {
      if (error instanceof UpstreamErrorThrown) return this.upstreamFailed(target, repository, tag, cached, error.cause);
      throw error;
    }
  }

  private async upstreamFailed(target: CacheTarget, repository: string, tag: string, cached: DescribedTag, error: unknown): Promise<CachedManifest> {
    if (!(error instanceof UpstreamError)) throw error;
    this.record(target, 'upstreamError', repository, tag, error.kind);
    if (error.kind === 'notFound') {
      await this.manifests.deleteTagIf(repository, tag, cached.digest);
      throw refusalOfUpstreamError(error, { unknown: 'MANIFEST_UNKNOWN', what: imageName(target, tag) });
    }
    if (error.kind === 'corrupt') throw refusalOfUpstreamError(error, { unknown: 'MANIFEST_UNKNOWN', what: imageName(target, tag) });
    this.record(target, 'stale', repository, tag, error.kind);
    return {
      manifest: await this.served(repository, tag, cached),
      stale: { upstream: target.upstream.name, reason: error.message, ...(cached.checkedAt === undefined ? {} : { checkedAt: cached.checkedAt }) },
    };
  }

  /**
   * GETs the manifest upstream, verifies it (by digest: its bytes hash to it; by tag: to the
   * `Docker-Content-Digest` sent, if any), stores it with the tag, and answers it. With `wrap`,
   * an upstream failure comes back as UpstreamErrorThrown (the caller has a stale copy to serve).
   */
  private async fetch(target: CacheTarget, repository: string, reference: string, tag: string | undefined, event: PullThroughEvent, wrap = false) {
    const started = this.now();
    let fetched: Awaited<ReturnType<UpstreamClient['getManifest']>>;
    try {
      fetched = await this.client.getManifest(target, reference);
    } catch (error) {
      if (!(error instanceof UpstreamError)) throw error;
      if (wrap && error.kind !== 'corrupt') throw new UpstreamErrorThrown(error);
      this.record(target, 'upstreamError', repository, reference, error.kind);
      throw refusalOfUpstreamError(error, { unknown: 'MANIFEST_UNKNOWN', what: imageName(target, reference) });
    }
    const manifest = this.parse(target, fetched.bytes, fetched.mediaType, fetched.digest);
    await this.manifests.cacheManifest(repository, { ...manifest, bytes: fetched.bytes }, tag, {
      cachedFrom: target.upstream.name,
      checkedAt: this.now(),
    });
    this.record(target, event, repository, reference, undefined, this.now() - started);
    return { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.size, bytes: fetched.bytes };
  }

  private parse(target: CacheTarget, bytes: Uint8Array, mediaType: string, digest: string): ParsedManifest {
    try {
      return parseManifest(bytes, mediaType, parseDigest(digest)?.algorithm ?? 'sha256');
    } catch (error) {
      if (!(error instanceof RegistryError)) throw error;
      throw new RegistryError(
        'UNSUPPORTED',
        `upstream ${target.upstream.name} served a manifest this registry cannot cache (${mediaType}): ${error.message}`,
        {
          detail: { upstream: target.upstream.name, mediaType },
        },
      );
    }
  }

  /** The cached manifest a tag names, and, once a day, the tag stamped as pulled (for `--keep-days`). */
  private async served(repository: string, tag: string, cached: DescribedTag): Promise<StoredManifest> {
    const today = epochDay(this.now());
    if (cached.pulledAt === undefined || cached.pulledAt < today) {
      await this.manifests.markTagPulled(repository, tag, today).catch(() => undefined);
    }
    const { digest, mediaType, size, bytes } = cached;
    if (bytes && mediaType !== undefined && size !== undefined) return { digest, mediaType, size, bytes };
    const manifest = await this.service.find(repository, { digest });
    if (!manifest) throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown to registry', { detail: { reference: tag } });
    return manifest;
  }

  private record(target: CacheTarget, event: PullThroughEvent, repository: string, reference: string, errorKind?: string, ms?: number): void {
    recordPullThrough(this.logger, {
      upstream: target.upstream.name,
      event,
      repository,
      reference,
      ...(errorKind ? { errorKind } : {}),
      ...(ms === undefined ? {} : { ms }),
    });
  }
}

/** `library/app:v1` or `library/app@sha256:...`, as the upstream names it: what refusals quote. */
function imageName(target: CacheTarget, reference: string): string {
  return `${target.upstreamPath}${parseDigest(reference) ? '@' : ':'}${reference}`;
}

/** Internal: an upstream failure while a stale copy could still answer. */
class UpstreamErrorThrown extends Error {
  constructor(override readonly cause: UpstreamError) {
    super(cause.message);
  }
}
