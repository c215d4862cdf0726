import type { Upstream } from '../../model/pull-through/upstream.js';
import type { ManifestRecord, ManifestStore, TagRecord } from '../../storage/manifest-store.js';
import type { UpstreamStore } from '../../storage/upstream-store.js';
import type { Logger } from '../../support/logger.js';

export interface CacheExpiryReport {
  /** Cache repositories looked at (of upstreams with `--keep-days`). */
  repositories: number;
  tagsExpired: number;
  manifestsExpired: number;
  dryRun: boolean;
}

const DAY_MS = 24 * 3600 * 1000;

/**
 * `--keep-days N` (docs/pull-through.md, "Housekeeping"): in each cache repository of an
 * upstream that has it, tags neither pulled (`pulledAt`, an epoch day) nor cached again
 * (`updatedAt`) in the last N days go, then manifests no kept tag names, no kept index lists as
 * a child, and none used in N days (`pulledAt`, `pushedAt`, `referencedAt`), with retention's
 * conditional deletes (a pull or push racing the run wins). Garbage collection frees their blobs
 * later in the same maintenance run. Runs before retention in `runMaintenance`, whose metrics line
 * carries the counts (CacheTagsExpired, CacheManifestsExpired).
 */
export async function expireCachedImages(
  stores: { manifests: ManifestStore; upstreams: UpstreamStore },
  options: { now?: number; dryRun?: boolean; deadline?: number; logger: Logger },
): Promise<CacheExpiryReport> {
  const now = options.now ?? Date.now();
  const report: CacheExpiryReport = { repositories: 0, tagsExpired: 0, manifestsExpired: 0, dryRun: options.dryRun === true };
  const expiring = (await stores.upstreams.list()).filter((upstream): upstream is Upstream & { keepDays: number } => upstream.keepDays !== undefined);
  for (const upstream of expiring) {
    const cutoff = now - upstream.keepDays * DAY_MS;
    for (const repository of await stores.upstreams.cachedRepositories(upstream)) {
      if (options.deadline !== undefined && Date.now() > options.deadline) break;
      report.repositories++;
      const expired = await expireRepository(stores.manifests, repository, cutoff, report.dryRun);
      report.tagsExpired += expired.tags;
      report.manifestsExpired += expired.manifests;
      if (expired.tags + expired.manifests > 0) {
        options.logger.info('pull-through expiry', {
          upstream: upstream.name,
          repository,
          ...expired,
          keepDays: upstream.keepDays,
          dryRun: report.dryRun,
        });
      }
    }
  }
  return report;
}

async function expireRepository(
  manifests: ManifestStore,
  repository: string,
  cutoff: number,
  dryRun: boolean,
): Promise<{ tags: number; manifests: number }> {
  const [tags, records] = await Promise.all([manifests.listTagRecords(repository), manifests.listManifestRecords(repository)]);
  const staleTags = tags.filter((tag) => lastUsed(tag.pulledAt, [tag.pushedAt]) < cutoff);
  let tagsExpired = 0;
  const keptTags: TagRecord[] = [];
  for (const tag of tags) {
    const stale = staleTags.includes(tag) && (dryRun || (await manifests.deleteTagIfUnchanged(repository, tag)));
    if (stale) tagsExpired++;
    else keptTags.push(tag);
  }

  const byDigest = new Map(records.map((record) => [record.digest, record]));
  const kept = new Set<string>();
  const keep = (digest: string) => {
    if (kept.has(digest)) return;
    kept.add(digest);
    for (const child of byDigest.get(digest)?.childDigests ?? []) keep(child);
  };
  for (const tag of keptTags) keep(tag.digest);
  for (const record of records) if (lastUsed(record.pulledAt, [record.pushedAt, record.referencedAt ?? 0]) >= cutoff) keep(record.digest);

  let manifestsExpired = 0;
  const expired: ManifestRecord[] = records.filter((record) => !kept.has(record.digest));
  for (const record of expired) if (dryRun || (await manifests.deleteManifestIfUnchanged(repository, record))) manifestsExpired++;
  return { tags: tagsExpired, manifests: manifestsExpired };
}

/** The latest use: the end of the `pulledAt` day, or the latest of the times given (ms). */
function lastUsed(pulledAtDay: number | undefined, times: number[]): number {
  return Math.max(pulledAtDay === undefined ? 0 : (pulledAtDay + 1) * DAY_MS - 1, ...times);
}
