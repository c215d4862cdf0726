/**
 * Retention policies as data, and their evaluation as a pure function: given a repository's
 * tags and manifests, which tags and which manifests a rule removes. docs/policies.md gives
 * the semantics with examples; in short:
 *
 * Tags. The rule considers the tags in its scope: all tags, or only those matching
 * `onlyMatching`, minus those matching `keepMatching` (which are always kept). Of the
 * considered tags it keeps the `keepLast` most recently pushed and those pushed less than
 * `deleteOlderThanDays` days ago; the others are deleted. A rule with neither `keepLast` nor
 * `deleteOlderThanDays` deletes no tag. Immutable tags are never deleted (and not considered).
 *
 * Manifests. After the tag deletions, a manifest survives when
 *   1. a remaining tag points at it; or
 *   2. it is a child of a surviving index, or a referrer (signature, SBOM...) whose subject
 *      survives; or
 *   3. it stands alone (no manifest of the repository lists it as a child or is its subject),
 *      it had no tag before this run, and either `untagged` is `keep` or it was pushed less
 *      than the grace period ago (a multi-arch push in progress pushes its children first).
 * Every other manifest goes: images whose tags this run removed (like ECR expiring an image or
 * Harbor deleting an artifact), untagged ones when `untagged` is `delete`, and the platform
 * manifests and referrers of everything that goes.
 */
import { mostSpecificMatch, wholeTagRegex } from './tag-patterns.js';

export type UntaggedAction = 'keep' | 'delete';

export interface RetentionRule {
  /** Repository pattern: `team/app`, `team/*`, `*`. */
  pattern: string;
  /** Keep the N most recently pushed of the considered tags. */
  keepLast?: number;
  /** Tags matching this regex (whole tag) are always kept and not considered. */
  keepMatching?: string;
  /** Only tags matching this regex (whole tag) are considered; others are always kept. */
  onlyMatching?: string;
  /** Considered tags pushed longer ago than this are deleted, unless `keepLast` keeps them. */
  deleteOlderThanDays?: number;
  /** What happens to manifests that stand alone without a tag. */
  untagged: UntaggedAction;
}

export interface TagState {
  tag: string;
  digest: string;
  /** When a push last wrote the tag, ms since the epoch. */
  pushedAt: number;
}

export interface ManifestState {
  digest: string;
  /** When the manifest was last pushed, ms since the epoch. */
  pushedAt: number;
  /** When an index pushed last referenced it as a child (see ManifestStore.putManifest). */
  referencedAt?: number;
  subject?: string;
  childDigests: readonly string[];
  mediaType?: string;
}

export interface RepositoryState {
  tags: readonly TagState[];
  manifests: readonly ManifestState[];
}

export interface TagDecision extends TagState {
  /** Why it goes or stays, in words for the report. */
  reason: string;
}

export type ManifestReason =
  /** It had tags and this run removed them all. */
  | 'tags-removed'
  /** It had no tag and stands alone; the rule deletes untagged manifests. */
  | 'untagged'
  /** It is a child or a referrer of manifests that all go. */
  | 'owner-removed';

export interface ManifestDecision extends ManifestState {
  reason: ManifestReason;
  /** Manifests that list it as a child, or its subject: it goes only after them. */
  owners: string[];
}

export interface RetentionPlan {
  deleteTags: TagDecision[];
  keepTags: TagDecision[];
  /** Owners before the manifests they own: deleting in this order never leaves an index without a child. */
  deleteManifests: ManifestDecision[];
  keptManifests: number;
}

export const DAY_MS = 24 * 3600 * 1000;
/** Untagged manifests younger than this are never deleted: their index or tag may be on its way. */
export const DEFAULT_UNTAGGED_GRACE_MS = 3600 * 1000;

export interface EvaluationOptions {
  now: number;
  untaggedGraceMs?: number;
  /** The pattern of the immutable rule that protects a tag, if one does: such tags are never deleted. */
  immutableRule?: (tag: string) => string | undefined;
}

/** The rule that governs a repository: the one with the most specific matching pattern. */
export function ruleFor(rules: readonly RetentionRule[], repository: string): RetentionRule | undefined {
  return mostSpecificMatch(rules, repository);
}

/** Why a rule cannot be stored; undefined when it can. */
export function retentionRuleProblem(rule: RetentionRule): string | undefined {
  if (rule.keepLast !== undefined && (!Number.isInteger(rule.keepLast) || rule.keepLast < 0)) {
    return 'keep-last must be a whole number, 0 or more';
  }
  if (rule.deleteOlderThanDays !== undefined && (!Number.isFinite(rule.deleteOlderThanDays) || rule.deleteOlderThanDays < 0)) {
    return 'delete-older-than must be a number of days, 0 or more';
  }
  if (rule.untagged !== 'keep' && rule.untagged !== 'delete') return 'untagged must be keep or delete';
  for (const [name, expression] of [
    ['keep-matching', rule.keepMatching],
    ['only-matching', rule.onlyMatching],
  ] as const) {
    if (expression === undefined) continue;
    try {
      wholeTagRegex(expression);
    } catch (error) {
      return `${name}: ${(error as Error).message}`;
    }
  }
  if (rule.keepLast === undefined && rule.deleteOlderThanDays === undefined && rule.untagged === 'keep') {
    return 'the rule would delete nothing: give keep-last, delete-older-than or untagged delete';
  }
  return undefined;
}

/** Newest first; equal push times put the greater tag name first, so the order is total. */
function newestFirst(a: TagState, b: TagState): number {
  if (a.pushedAt !== b.pushedAt) return b.pushedAt - a.pushedAt;
  return a.tag < b.tag ? 1 : a.tag > b.tag ? -1 : 0;
}

function days(count: number): string {
  return `${count} day${count === 1 ? '' : 's'}`;
}

/** Which tags the rule deletes. Pure. */
export function evaluateTags(
  rule: RetentionRule,
  tags: readonly TagState[],
  now: number,
  immutableRule: (tag: string) => string | undefined = () => undefined,
): { deleteTags: TagDecision[]; keepTags: TagDecision[] } {
  const keepMatching = rule.keepMatching === undefined ? undefined : wholeTagRegex(rule.keepMatching);
  const onlyMatching = rule.onlyMatching === undefined ? undefined : wholeTagRegex(rule.onlyMatching);
  const deleteTags: TagDecision[] = [];
  const keepTags: TagDecision[] = [];
  const considered: TagState[] = [];
  for (const tag of tags) {
    const immutable = immutableRule(tag.tag);
    if (immutable !== undefined) keepTags.push({ ...tag, reason: `immutable (rule ${immutable})` });
    else if (onlyMatching && !onlyMatching(tag.tag)) keepTags.push({ ...tag, reason: `does not match only-matching ${rule.onlyMatching}` });
    else if (keepMatching?.(tag.tag)) keepTags.push({ ...tag, reason: `matches keep-matching ${rule.keepMatching}` });
    else considered.push(tag);
  }
  considered.sort(newestFirst);
  const cutoff = rule.deleteOlderThanDays === undefined ? undefined : now - rule.deleteOlderThanDays * DAY_MS;
  for (const [position, tag] of considered.entries()) {
    if (rule.keepLast === undefined && cutoff === undefined) {
      keepTags.push({ ...tag, reason: 'the rule deletes no tags' });
    } else if (rule.keepLast !== undefined && position < rule.keepLast) {
      keepTags.push({ ...tag, reason: `among the ${rule.keepLast} most recently pushed` });
    } else if (cutoff !== undefined && tag.pushedAt >= cutoff) {
      keepTags.push({ ...tag, reason: `pushed within ${days(rule.deleteOlderThanDays!)}` });
    } else {
      const parts: string[] = [];
      if (rule.keepLast !== undefined) parts.push(`not among the ${rule.keepLast} most recently pushed`);
      if (cutoff !== undefined) parts.push(`pushed over ${days(rule.deleteOlderThanDays!)} ago`);
      deleteTags.push({ ...tag, reason: parts.join(' and ') });
    }
  }
  return { deleteTags, keepTags };
}

/** The whole plan for one repository: tags, then manifests. Pure. */
export function evaluateRetention(rule: RetentionRule, state: RepositoryState, options: EvaluationOptions): RetentionPlan {
  const { deleteTags, keepTags } = evaluateTags(rule, state.tags, options.now, options.immutableRule);
  const grace = options.untaggedGraceMs ?? DEFAULT_UNTAGGED_GRACE_MS;

  const manifests = new Map(state.manifests.map((manifest) => [manifest.digest, manifest]));
  const taggedBefore = new Set(state.tags.map((tag) => tag.digest));
  const taggedAfter = new Set(keepTags.map((tag) => tag.digest));

  // owners: who keeps a manifest alive besides a tag; dependents: the reverse.
  const owners = new Map<string, Set<string>>();
  const dependents = new Map<string, Set<string>>();
  const relate = (owner: string, dependent: string) => {
    if (owner === dependent || !manifests.has(owner) || !manifests.has(dependent)) return;
    if (!owners.has(dependent)) owners.set(dependent, new Set());
    owners.get(dependent)!.add(owner);
    if (!dependents.has(owner)) dependents.set(owner, new Set());
    dependents.get(owner)!.add(dependent);
  };
  for (const manifest of manifests.values()) {
    for (const child of manifest.childDigests) relate(manifest.digest, child);
    if (manifest.subject) relate(manifest.subject, manifest.digest);
  }

  const survivors = new Set<string>();
  const pending: string[] = [];
  const survive = (digest: string) => {
    if (survivors.has(digest)) return;
    survivors.add(digest);
    pending.push(digest);
  };
  for (const manifest of manifests.values()) {
    const standsAlone = !owners.has(manifest.digest);
    if (taggedAfter.has(manifest.digest)) survive(manifest.digest);
    else if (standsAlone && !taggedBefore.has(manifest.digest)) {
      if (rule.untagged === 'keep' || manifest.pushedAt > options.now - grace) survive(manifest.digest);
    }
  }
  while (pending.length > 0) {
    for (const dependent of dependents.get(pending.pop()!) ?? []) survive(dependent);
  }

  const going = [...manifests.values()].filter((manifest) => !survivors.has(manifest.digest));
  const goingSet = new Set(going.map((manifest) => manifest.digest));
  const decisions = new Map<string, ManifestDecision>();
  for (const manifest of going) {
    const reason: ManifestReason = taggedBefore.has(manifest.digest) ? 'tags-removed' : owners.has(manifest.digest) ? 'owner-removed' : 'untagged';
    decisions.set(manifest.digest, { ...manifest, reason, owners: [...(owners.get(manifest.digest) ?? [])].sort() });
  }
  return {
    deleteTags,
    keepTags,
    deleteManifests: ownersFirst(decisions, goingSet),
    keptManifests: manifests.size - going.length,
  };
}

/** Kahn's order over the going manifests: each after all of its (going) owners. */
function ownersFirst(decisions: Map<string, ManifestDecision>, going: Set<string>): ManifestDecision[] {
  const remaining = new Map<string, number>();
  for (const [digest, decision] of decisions) remaining.set(digest, decision.owners.filter((owner) => going.has(owner)).length);
  const ready = [...decisions.keys()].filter((digest) => remaining.get(digest) === 0).sort();
  const ordered: ManifestDecision[] = [];
  const children = new Map<string, string[]>();
  for (const decision of decisions.values()) {
    for (const owner of decision.owners) {
      if (!going.has(owner)) continue;
      if (!children.has(owner)) children.set(owner, []);
      children.get(owner)!.push(decision.digest);
    }
  }
  const placed = new Set<string>();
  for (let next = 0; next < ready.length; next++) {
    const digest = ready[next]!;
    placed.add(digest);
    ordered.push(decisions.get(digest)!);
    for (const child of children.get(digest) ?? []) {
      const left = remaining.get(child)! - 1;
      remaining.set(child, left);
      if (left === 0) ready.push(child);
    }
  }
  // Content addressing rules out cycles; should one appear anyway, its members still come last.
  for (const [digest, decision] of decisions) if (!placed.has(digest)) ordered.push(decision);
  return ordered;
}
