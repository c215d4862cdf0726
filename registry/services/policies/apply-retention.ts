/**
 * Runs the retention rules over every repository: evaluates each one (retention.ts), then,
 * unless it is a dry run, deletes what the plan says, conditionally, so that a push racing
 * retention always wins:
 * - a tag goes only if it still names the digest evaluated and was not pushed since;
 * - a manifest goes only if it was neither pushed again nor referenced by a new index since,
 *   and only after every manifest it depends on (its index, its subject) actually went.
 * Transport-free: the scheduled maintenance Lambda calls it (before garbage collection, which
 * then frees the blobs nothing references any more), and so does `npm run policy`.
 */
import type { Logger } from '../../support/logger.js';
import { silentLogger } from '../../support/logger.js';
import type { ManifestStore } from '../../storage/manifest-store.js';
import type { PolicyStore } from '../../storage/policy-store.js';
import { immutableRuleFor } from '../../model/policies/immutability.js';
import {
  DEFAULT_UNTAGGED_GRACE_MS,
  evaluateRetention,
  ruleFor,
  type ManifestDecision,
  type ManifestReason,
  type RetentionRule,
} from '../../model/policies/retention.js';

export interface RetentionServices {
  manifests: ManifestStore;
  policies: PolicyStore;
}

export interface RetentionOptions {
  /** Evaluate and report, delete nothing. */
  dryRun: boolean;
  logger?: Logger;
  /** The time retention runs at; defaults to now. */
  now?: number;
  /** Untagged manifests younger than this are kept; defaults to one hour. */
  untaggedGraceMs?: number;
  /** Only these repositories (default: every repository in the catalog). */
  repositories?: string[];
  /**
   * Epoch ms after which no further repository is started (a Lambda's timeout minus a margin);
   * the report then says where the run stopped, and the next run starts from the beginning.
   */
  deadline?: number;
}

/**
 * `deleted`: gone. `would-delete`: dry run. `changed`: a push changed it since it was read, so
 * it stays. `blocked`: what it depends on (its index or subject, or
 * its tag) stayed, so it stays too.
 */
export type Outcome = 'deleted' | 'would-delete' | 'changed' | 'blocked';

export interface TagOutcome {
  tag: string;
  digest: string;
  pushedAt: string;
  reason: string;
  outcome: Outcome;
}

export interface ManifestOutcome {
  digest: string;
  mediaType?: string;
  reason: ManifestReason;
  /** The indexes or subject it went with (reason `owner-removed`). */
  owners: string[];
  outcome: Outcome;
}

export interface RepositoryReport {
  repository: string;
  /** The pattern of the rule applied. */
  rule: string;
  tags: TagOutcome[];
  manifests: ManifestOutcome[];
  keptTags: number;
  keptManifests: number;
  /** Set when the repository could not be processed; the run goes on with the next one. */
  error?: string;
}

export interface RetentionReport {
  dryRun: boolean;
  startedAt: string;
  finishedAt: string;
  rules: RetentionRule[];
  repositories: RepositoryReport[];
  /** Set when the deadline stopped the run: the first repository not looked at. */
  stoppedBefore?: string;
  totals: {
    repositories: number;
    tagsDeleted: number;
    manifestsDeleted: number;
    /** Dry run: what `apply` would delete now. */
    tagsWouldDelete: number;
    manifestsWouldDelete: number;
    /** Left in place because a push changed them (or what they depend on) during the run. */
    skipped: number;
    errors: number;
  };
}

/** Deletes run a few at a time: enough to be quick, few enough not to be throttled. */
const CONCURRENCY = 8;
const CATALOG_PAGE = 500;

export async function applyRetention(services: RetentionServices, options: RetentionOptions): Promise<RetentionReport> {
  const logger = options.logger ?? silentLogger;
  const now = options.now ?? Date.now();
  const startedAt = new Date().toISOString();
  const [rules, immutableRules] = await Promise.all([services.policies.retentionRules(), services.policies.immutableRules()]);
  const repositories: RepositoryReport[] = [];
  let stoppedBefore: string | undefined;
  if (rules.length > 0) {
    for await (const repository of options.repositories ?? catalog(services.manifests)) {
      const rule = ruleFor(rules, repository);
      if (!rule) continue;
      if (options.deadline !== undefined && Date.now() >= options.deadline) {
        stoppedBefore = repository;
        logger.warn('retention stopped at its deadline', { stoppedBefore });
        break;
      }
      try {
        const immutable = (tag: string) => immutableRuleFor(immutableRules, repository, tag)?.pattern;
        repositories.push(await retainRepository(services.manifests, repository, rule, { ...options, now, immutable }, logger));
      } catch (error) {
        logger.error('retention failed for a repository', { repository, rule: rule.pattern, error: (error as Error).message });
        repositories.push({
          repository,
          rule: rule.pattern,
          tags: [],
          manifests: [],
          keptTags: 0,
          keptManifests: 0,
          error: (error as Error).message,
        });
      }
    }
  }
  const report: RetentionReport = {
    dryRun: options.dryRun,
    startedAt,
    finishedAt: new Date().toISOString(),
    rules,
    repositories,
    ...(stoppedBefore === undefined ? {} : { stoppedBefore }),
    totals: totalsOf(repositories),
  };
  logger.info(options.dryRun ? 'retention dry run finished' : 'retention finished', { totals: report.totals });
  return report;
}

async function* catalog(manifests: ManifestStore): AsyncGenerator<string> {
  let last: string | undefined;
  do {
    const page = await manifests.listRepositories({ limit: CATALOG_PAGE, last }, () => true);
    yield* page.items;
    last = page.next;
  } while (last);
}

async function retainRepository(
  store: ManifestStore,
  repository: string,
  rule: RetentionRule,
  options: RetentionOptions & { now: number; immutable: (tag: string) => string | undefined },
  logger: Logger,
): Promise<RepositoryReport> {
  const [tags, manifests] = await Promise.all([store.listTagRecords(repository), store.listManifestRecords(repository)]);
  const plan = evaluateRetention(
    rule,
    { tags, manifests },
    { now: options.now, untaggedGraceMs: options.untaggedGraceMs ?? DEFAULT_UNTAGGED_GRACE_MS, immutableRule: options.immutable },
  );
  const report: RepositoryReport = {
    repository,
    rule: rule.pattern,
    tags: [],
    manifests: [],
    keptTags: plan.keepTags.length,
    keptManifests: plan.keptManifests,
  };

  // Tags first: a manifest is untagged only once its tags are gone.
  const tagOutcomes = await inParallel(plan.deleteTags, async (tag): Promise<Outcome> => {
    if (options.dryRun) return 'would-delete';
    return (await store.deleteTagIfUnchanged(repository, tag)) ? 'deleted' : 'changed';
  });
  const tagsLeft = new Set<string>();
  plan.deleteTags.forEach((tag, position) => {
    const outcome = tagOutcomes[position]!;
    if (outcome === 'changed') tagsLeft.add(tag.digest);
    report.tags.push({ tag: tag.tag, digest: tag.digest, pushedAt: new Date(tag.pushedAt).toISOString(), reason: tag.reason, outcome });
    if (outcome === 'deleted') logger.info('retention deleted a tag', { repository, tag: tag.tag, digest: tag.digest, reason: tag.reason });
  });

  // Then manifests, owners before what they own, one generation at a time.
  const outcomes = new Map<string, Outcome>();
  for (const generation of generations(plan.deleteManifests)) {
    const results = await inParallel(generation, async (manifest): Promise<Outcome> => {
      if (options.dryRun) return 'would-delete';
      const ownerStayed = manifest.owners.some((owner) => outcomes.has(owner) && outcomes.get(owner) !== 'deleted');
      if (ownerStayed || tagsLeft.has(manifest.digest)) return 'blocked';
      return (await store.deleteManifestIfUnchanged(repository, manifest)) ? 'deleted' : 'changed';
    });
    generation.forEach((manifest, position) => {
      const outcome = results[position]!;
      outcomes.set(manifest.digest, outcome);
      report.manifests.push({ digest: manifest.digest, mediaType: manifest.mediaType, reason: manifest.reason, owners: manifest.owners, outcome });
      if (outcome === 'deleted') {
        logger.info('retention deleted a manifest', { repository, digest: manifest.digest, reason: manifest.reason, owners: manifest.owners });
      }
    });
  }
  const skipped = [...report.tags, ...report.manifests].filter((item) => item.outcome === 'changed' || item.outcome === 'blocked').length;
  logger.info('retention evaluated a repository', {
    repository,
    rule: rule.pattern,
    dryRun: options.dryRun,
    tags: report.tags.length,
    manifests: report.manifests.length,
    keptTags: report.keptTags,
    keptManifests: report.keptManifests,
    skipped,
  });
  return report;
}

/**
 * Splits the owners-first order into generations: a manifest's owners all sit in earlier
 * generations, so each generation can be deleted in parallel.
 */
function generations(ordered: readonly ManifestDecision[]): ManifestDecision[][] {
  const depth = new Map<string, number>();
  const result: ManifestDecision[][] = [];
  for (const manifest of ordered) {
    const level = Math.max(-1, ...manifest.owners.map((owner) => depth.get(owner) ?? -1)) + 1;
    depth.set(manifest.digest, level);
    if (!result[level]) result[level] = [];
    result[level].push(manifest);
  }
  return result.filter((generation) => generation !== undefined);
}

async function inParallel<T, R>(items: readonly T[], work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const position = next++;
      results[position] = await work(items[position]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, items.length) }, worker));
  return results;
}

function totalsOf(repositories: readonly RepositoryReport[]): RetentionReport['totals'] {
  const count = (pick: (report: RepositoryReport) => { outcome: Outcome }[], outcome: Outcome) =>
    repositories.reduce((sum, report) => sum + pick(report).filter((item) => item.outcome === outcome).length, 0);
  const tags = (report: RepositoryReport) => report.tags;
  const manifests = (report: RepositoryReport) => report.manifests;
  return {
    repositories: repositories.length,
    tagsDeleted: count(tags, 'deleted'),
    manifestsDeleted: count(manifests, 'deleted'),
    tagsWouldDelete: count(tags, 'would-delete'),
    manifestsWouldDelete: count(manifests, 'would-delete'),
    skipped: count(tags, 'changed') + count(manifests, 'changed') + count(manifests, 'blocked'),
    errors: repositories.filter((report) => report.error !== undefined).length,
  };
}
