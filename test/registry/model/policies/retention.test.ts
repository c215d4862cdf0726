import { describe, expect, it } from 'vitest';
import {
  DAY_MS,
  evaluateRetention,
  evaluateTags,
  retentionRuleProblem,
  ruleFor,
  type ManifestState,
  type RetentionRule,
  type TagState,
} from '../../../../registry/model/policies/retention.js';

const NOW = Date.UTC(2025, 0, 31, 12);
const HOUR = 3600 * 1000;

/** A digest named after a word, so that failures read well. */
const d = (name: string) => `sha256:${name}`;

function rule(fields: Partial<RetentionRule> = {}): RetentionRule {
  return { pattern: '*', untagged: 'keep', ...fields };
}

/** Tag `name` on manifest `digest`, pushed `ageDays` ago. */
function tag(name: string, digest: string, ageDays: number): TagState {
  return { tag: name, digest: d(digest), pushedAt: NOW - ageDays * DAY_MS };
}

function manifest(digest: string, ageDays: number, fields: Partial<Omit<ManifestState, 'digest'>> = {}): ManifestState {
  return { digest: d(digest), pushedAt: NOW - ageDays * DAY_MS, childDigests: [], ...fields };
}

/** A manifest per tag, pushed when the tag was. */
function taggedImages(tags: TagState[]): ManifestState[] {
  const seen = new Map<string, ManifestState>();
  for (const t of tags) if (!seen.has(t.digest)) seen.set(t.digest, { digest: t.digest, pushedAt: t.pushedAt, childDigests: [] });
  return [...seen.values()];
}

function deletedTags(r: RetentionRule, tags: TagState[]): string[] {
  return evaluateTags(r, tags, NOW)
    .deleteTags.map((t) => t.tag)
    .sort();
}

function plan(r: RetentionRule, tags: TagState[], manifests: ManifestState[], untaggedGraceMs?: number) {
  const result = evaluateRetention(r, { tags, manifests }, { now: NOW, untaggedGraceMs });
  return {
    ...result,
    tagNames: result.deleteTags.map((t) => t.tag).sort(),
    digests: result.deleteManifests.map((m) => m.digest).sort(),
    reasons: Object.fromEntries(result.deleteManifests.map((m) => [m.digest, m.reason])),
  };
}

const SIX = [tag('v1', 'a', 6), tag('v2', 'b', 5), tag('v3', 'c', 4), tag('v4', 'd', 3), tag('v5', 'e', 2), tag('v6', 'f', 1)];

describe('which tags go', () => {
  it('keep-last N keeps the N most recently pushed tags, whatever their names sort as', () => {
    const tags = [tag('zeta', 'a', 1), tag('alpha', 'b', 2), tag('v10', 'c', 3), tag('v9', 'd', 4)];
    expect(deletedTags(rule({ keepLast: 2 }), tags)).toEqual(['v10', 'v9']);
  });

  it('keep-last larger than the number of tags deletes nothing; keep-last 0 deletes every considered tag', () => {
    expect(deletedTags(rule({ keepLast: 10 }), SIX)).toEqual([]);
    expect(deletedTags(rule({ keepLast: 0 }), SIX)).toEqual(['v1', 'v2', 'v3', 'v4', 'v5', 'v6']);
  });

  it('breaks ties in push time by name, so the result is deterministic', () => {
    const tags = [tag('b', 'a', 1), tag('a', 'b', 1), tag('c', 'c', 1)];
    expect(deletedTags(rule({ keepLast: 1 }), tags)).toEqual(['a', 'b']);
  });

  it('delete-older-than D deletes tags pushed more than D days ago', () => {
    expect(deletedTags(rule({ deleteOlderThanDays: 3 }), SIX)).toEqual(['v1', 'v2', 'v3']);
    // Exactly D days old is not older than D days.
    expect(deletedTags(rule({ deleteOlderThanDays: 4 }), SIX)).toEqual(['v1', 'v2']);
    expect(deletedTags(rule({ deleteOlderThanDays: 0.5 }), SIX)).toEqual(['v1', 'v2', 'v3', 'v4', 'v5', 'v6']);
  });

  it('keep-last and delete-older-than keep a tag if either would: "the 2 newest and anything from the last 4 days"', () => {
    expect(deletedTags(rule({ keepLast: 2, deleteOlderThanDays: 4 }), SIX)).toEqual(['v1', 'v2']);
    // The 4 newest protect more than the last 2 days do.
    expect(deletedTags(rule({ keepLast: 4, deleteOlderThanDays: 2 }), SIX)).toEqual(['v1', 'v2']);
  });

  it('keep-matching tags are always kept and do not count towards N', () => {
    const tags = [...SIX, tag('latest', 'a', 10), tag('stable', 'b', 9)];
    expect(deletedTags(rule({ keepLast: 2, keepMatching: 'latest|stable' }), tags)).toEqual(['v1', 'v2', 'v3', 'v4']);
  });

  it('only-matching limits the rule to the tags it matches; the others are never deleted', () => {
    const tags = [...SIX, tag('dev-1', 'x', 30), tag('dev-2', 'y', 20)];
    expect(deletedTags(rule({ keepLast: 1, onlyMatching: 'v[0-9]+' }), tags)).toEqual(['v1', 'v2', 'v3', 'v4', 'v5']);
    expect(deletedTags(rule({ keepLast: 1, onlyMatching: 'dev-.*' }), tags)).toEqual(['dev-1']);
  });

  it('regexes match the whole tag: v.* is "starts with v", not "contains v"', () => {
    const tags = [tag('v1', 'a', 5), tag('dev1', 'b', 5), tag('v1-rc', 'c', 5)];
    expect(deletedTags(rule({ keepLast: 0, onlyMatching: 'v.*' }), tags)).toEqual(['v1', 'v1-rc']);
    expect(deletedTags(rule({ keepLast: 0, onlyMatching: 'v1' }), tags)).toEqual(['v1']);
    expect(deletedTags(rule({ keepLast: 0, keepMatching: '.*-rc' }), tags)).toEqual(['dev1', 'v1']);
    // Alternation is grouped, not "^a|b$".
    expect(deletedTags(rule({ keepLast: 0, onlyMatching: 'dev1|v1' }), tags)).toEqual(['dev1', 'v1']);
  });

  it('combines only-matching and keep-matching: consider v* tags, but never delete v*-lts', () => {
    const tags = [tag('v1', 'a', 9), tag('v1-lts', 'b', 8), tag('v2', 'c', 7), tag('v3', 'd', 1), tag('main', 'e', 30)];
    expect(deletedTags(rule({ onlyMatching: 'v.*', keepMatching: 'v.*-lts', keepLast: 1 }), tags)).toEqual(['v1', 'v2']);
  });

  it('a rule without keep-last or delete-older-than deletes no tag', () => {
    expect(deletedTags(rule({ untagged: 'delete' }), SIX)).toEqual([]);
  });

  it('explains every decision', () => {
    const { deleteTags, keepTags } = evaluateTags(rule({ keepLast: 1, deleteOlderThanDays: 2, keepMatching: 'v1' }), SIX, NOW);
    const reasons = Object.fromEntries([...deleteTags, ...keepTags].map((t) => [t.tag, t.reason]));
    expect(reasons).toEqual({
      v1: 'matches keep-matching v1',
      v2: 'not among the 1 most recently pushed and pushed over 2 days ago',
      v3: 'not among the 1 most recently pushed and pushed over 2 days ago',
      v4: 'not among the 1 most recently pushed and pushed over 2 days ago',
      v5: 'pushed within 2 days',
      v6: 'among the 1 most recently pushed',
    });
  });
});

describe('which manifests go', () => {
  it('an image whose only tag goes, goes with it (keep-last 3 of 6)', () => {
    const p = plan(rule({ keepLast: 3 }), SIX, taggedImages(SIX));
    expect(p.tagNames).toEqual(['v1', 'v2', 'v3']);
    expect(p.digests).toEqual([d('a'), d('b'), d('c')]);
    expect(new Set(Object.values(p.reasons))).toEqual(new Set(['tags-removed']));
    expect(p.keptManifests).toBe(3);
  });

  it('a manifest stays while any tag still names it', () => {
    const tags = [tag('old', 'a', 9), tag('new', 'a', 1), tag('other', 'b', 5)];
    const p = plan(rule({ keepLast: 1 }), tags, taggedImages(tags));
    expect(p.tagNames).toEqual(['old', 'other']);
    expect(p.digests).toEqual([d('b')]);
  });

  it('untagged keep: manifests that had no tag stay; untagged delete: they go once past the grace period', () => {
    const manifests = [manifest('orphan', 3), manifest('fresh', 0.01), ...taggedImages(SIX)];
    expect(plan(rule({ keepLast: 10 }), SIX, manifests).digests).toEqual([]);
    const p = plan(rule({ keepLast: 10, untagged: 'delete' }), SIX, manifests);
    expect(p.digests).toEqual([d('orphan')]);
    expect(p.reasons[d('orphan')]).toBe('untagged');
    // Without a grace period the fresh one goes too.
    expect(plan(rule({ untagged: 'delete' }), SIX, manifests, 0).digests).toEqual([d('fresh'), d('orphan')]);
  });

  it('"untagged" is judged after the tag deletions: with untagged keep, an image whose tags expired still goes', () => {
    const tags = [tag('v1', 'a', 9), tag('v2', 'b', 1)];
    const p = plan(rule({ keepLast: 1, untagged: 'keep' }), tags, taggedImages(tags));
    expect(p.digests).toEqual([d('a')]);
    expect(p.reasons[d('a')]).toBe('tags-removed');
  });

  it('an image whose tags expired goes even when it was pushed a moment ago (the grace is for untagged pushes)', () => {
    const tags = [tag('v1', 'a', 0.001), tag('v2', 'b', 0)];
    expect(plan(rule({ keepLast: 1 }), tags, taggedImages(tags)).digests).toEqual([d('a')]);
  });

  describe('multi-arch indexes', () => {
    const children = [manifest('amd64', 5), manifest('arm64', 5)];
    const index = manifest('index', 5, { childDigests: [d('amd64'), d('arm64')], mediaType: 'application/vnd.oci.image.index.v1+json' });

    it('never deletes the untagged platform manifests of an index that stays, even with untagged delete', () => {
      const tags = [tag('multi', 'index', 5)];
      const p = plan(rule({ keepLast: 1, untagged: 'delete' }), tags, [index, ...children]);
      expect(p.digests).toEqual([]);
      expect(p.keptManifests).toBe(3);
    });

    it('deletes the platform manifests with their index, even with untagged keep, index first', () => {
      const tags = [tag('multi', 'index', 5), tag('newer', 'other', 1)];
      const p = plan(rule({ keepLast: 1, untagged: 'keep' }), tags, [index, ...children, manifest('other', 1)]);
      expect(p.digests).toEqual([d('amd64'), d('arm64'), d('index')]);
      expect(p.deleteManifests[0]!.digest).toBe(d('index'));
      expect(p.reasons[d('amd64')]).toBe('owner-removed');
      expect(p.deleteManifests.find((m) => m.digest === d('amd64'))!.owners).toEqual([d('index')]);
    });

    it('keeps a platform manifest another surviving index still lists', () => {
      const second = manifest('index2', 1, { childDigests: [d('amd64')] });
      const tags = [tag('multi', 'index', 5), tag('amd-only', 'index2', 1)];
      const p = plan(rule({ keepLast: 1 }), tags, [index, second, ...children]);
      expect(p.digests).toEqual([d('arm64'), d('index')]);
    });

    it('keeps a platform manifest that has its own surviving tag', () => {
      const tags = [tag('multi', 'index', 5), tag('arm', 'arm64', 1), tag('newest', 'other', 0)];
      const p = plan(rule({ keepLast: 2 }), tags, [index, ...children, manifest('other', 0)]);
      expect(p.digests).toEqual([d('amd64'), d('index')]);
    });

    it('keeps the children of an untagged index that untagged keep keeps', () => {
      const p = plan(rule({ keepLast: 0, untagged: 'keep' }), [], [index, ...children]);
      expect(p.digests).toEqual([]);
      const gone = plan(rule({ keepLast: 0, untagged: 'delete' }), [], [index, ...children]);
      expect(gone.digests).toEqual([d('amd64'), d('arm64'), d('index')]);
      expect(gone.reasons).toEqual({ [d('index')]: 'untagged', [d('amd64')]: 'owner-removed', [d('arm64')]: 'owner-removed' });
    });

    it('a child pushed within the grace period is still kept when it stands alone (its index is on its way)', () => {
      const p = plan(rule({ untagged: 'delete' }), [], [manifest('amd64', 0.001), manifest('arm64', 0.001)]);
      expect(p.digests).toEqual([]);
    });

    it('nested indexes go top down', () => {
      const inner = manifest('inner', 5, { childDigests: [d('amd64')] });
      const outer = manifest('outer', 5, { childDigests: [d('inner'), d('arm64')] });
      const tags = [tag('nested', 'outer', 5), tag('keep', 'x', 0)];
      const p = plan(rule({ keepLast: 1 }), tags, [outer, inner, ...children, manifest('x', 0)]);
      const order = p.deleteManifests.map((m) => m.digest);
      expect(order.sort()).toEqual([d('amd64'), d('arm64'), d('inner'), d('outer')]);
      const position = (name: string) => p.deleteManifests.findIndex((m) => m.digest === d(name));
      expect(position('outer')).toBeLessThan(position('inner'));
      expect(position('inner')).toBeLessThan(position('amd64'));
      expect(position('outer')).toBeLessThan(position('arm64'));
    });
  });

  describe('referrers (signatures, SBOMs)', () => {
    const image = manifest('image', 5);
    const signature = manifest('sig', 5, { subject: d('image') });
    const sbom = manifest('sbom', 5, { subject: d('image') });
    const sbomSignature = manifest('sbom-sig', 5, { subject: d('sbom') });

    it('never deletes the referrers of a subject that stays, even with untagged delete', () => {
      const tags = [tag('v1', 'image', 5)];
      expect(plan(rule({ keepLast: 1, untagged: 'delete' }), tags, [image, signature, sbom, sbomSignature]).digests).toEqual([]);
    });

    it('deletes the referrers of a subject that goes, and their referrers, subject first, even with untagged keep', () => {
      const tags = [tag('v1', 'image', 5), tag('v2', 'next', 1)];
      const p = plan(rule({ keepLast: 1 }), tags, [image, signature, sbom, sbomSignature, manifest('next', 1)]);
      expect(p.digests).toEqual([d('image'), d('sbom'), d('sbom-sig'), d('sig')].sort());
      const position = (name: string) => p.deleteManifests.findIndex((m) => m.digest === d(name));
      expect(position('image')).toBe(0);
      expect(position('sbom')).toBeLessThan(position('sbom-sig'));
      expect(p.reasons[d('sig')]).toBe('owner-removed');
      expect(p.deleteManifests.find((m) => m.digest === d('sig'))!.owners).toEqual([d('image')]);
    });

    it('a referrer goes with its subject even if it was pushed a moment ago', () => {
      const tags = [tag('v1', 'image', 5), tag('v2', 'next', 1)];
      const fresh = manifest('fresh-sig', 0.0001, { subject: d('image') });
      expect(plan(rule({ keepLast: 1 }), tags, [image, fresh, manifest('next', 1)]).digests).toEqual([d('fresh-sig'), d('image')]);
    });

    it('a referrer whose subject is not in the repository is just an untagged manifest', () => {
      const dangling = manifest('dangling', 5, { subject: d('absent') });
      expect(plan(rule({ keepLast: 1, untagged: 'keep' }), [], [dangling]).digests).toEqual([]);
      const p = plan(rule({ keepLast: 1, untagged: 'delete' }), [], [dangling]);
      expect(p.reasons).toEqual({ [d('dangling')]: 'untagged' });
    });

    it('a tagged referrer (cosign-style sha256-<hex>.sig tag) is kept by its tag', () => {
      const tags = [tag('v1', 'image', 5), tag('sha256-image.sig', 'sig', 5), tag('v2', 'next', 1)];
      const p = plan(rule({ keepLast: 1, onlyMatching: 'v.*' }), tags, [image, signature, manifest('next', 1)]);
      expect(p.tagNames).toEqual(['v1']);
      expect(p.digests).toEqual([d('image')]);
    });

    it('the referrer of an index child stays while the index stays', () => {
      const index = manifest('index', 5, { childDigests: [d('image')] });
      const tags = [tag('multi', 'index', 5)];
      expect(plan(rule({ keepLast: 1, untagged: 'delete' }), tags, [index, image, signature]).digests).toEqual([]);
    });
  });

  it('ignores tags that name a manifest the repository does not hold, apart from deleting them', () => {
    const tags = [tag('dangling', 'missing', 9), tag('v1', 'a', 1)];
    const p = plan(rule({ keepLast: 1 }), tags, [manifest('a', 1)]);
    expect(p.tagNames).toEqual(['dangling']);
    expect(p.digests).toEqual([]);
  });

  it('the Harbor-style example: the 10 most recent v* tags and anything pushed in the last 7 days; delete untagged', () => {
    const tags: TagState[] = [];
    for (let i = 1; i <= 15; i++) tags.push(tag(`v${i}`, `v${i}`, 30 - i));
    tags.push(tag('v16', 'v16', 3), tag('v17', 'v17', 2), tag('latest', 'v17', 2), tag('main', 'main', 60));
    const manifests = [...taggedImages(tags), manifest('untagged', 20)];
    const p = plan(rule({ onlyMatching: 'v.*', keepLast: 10, deleteOlderThanDays: 7, untagged: 'delete' }), tags, manifests);
    // v8..v17 are the 10 newest v* tags; nothing else of the v* tags is from the last 7 days.
    expect(p.tagNames).toEqual(['v1', 'v2', 'v3', 'v4', 'v5', 'v6', 'v7'].sort());
    expect(p.digests).toEqual([...['v1', 'v2', 'v3', 'v4', 'v5', 'v6', 'v7'].map(d), d('untagged')].sort());
  });

  it('an empty repository plans nothing', () => {
    expect(plan(rule({ keepLast: 0, untagged: 'delete' }), [], [])).toMatchObject({ tagNames: [], digests: [], keptManifests: 0 });
  });

  it('handles thousands of tags quickly', () => {
    const tags = Array.from({ length: 5000 }, (_, i) => tag(`build-${i}`, `m${i}`, i / 100));
    const started = performance.now();
    const p = plan(rule({ keepLast: 100 }), tags, taggedImages(tags));
    expect(p.tagNames).toHaveLength(4900);
    expect(p.digests).toHaveLength(4900);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe('rules', () => {
  it('the most specific pattern governs a repository', () => {
    const rules = [rule({ pattern: '*', keepLast: 1 }), rule({ pattern: 'team/*', keepLast: 2 }), rule({ pattern: 'team/app', keepLast: 3 })];
    expect(ruleFor(rules, 'team/app')?.keepLast).toBe(3);
    expect(ruleFor(rules, 'team/other')?.keepLast).toBe(2);
    expect(ruleFor(rules, 'team/app/api')?.keepLast).toBe(2);
    expect(ruleFor(rules, 'elsewhere')?.keepLast).toBe(1);
    expect(ruleFor([rule({ pattern: 'team/*' })], 'teamster/app')).toBeUndefined();
    expect(ruleFor([rule({ pattern: 'team/*' }), rule({ pattern: 'team/app/*' })], 'team/app/api')?.pattern).toBe('team/app/*');
  });

  it('refuses rules that cannot be applied or would do nothing', () => {
    expect(retentionRuleProblem(rule({ keepLast: 3 }))).toBeUndefined();
    expect(retentionRuleProblem(rule({ untagged: 'delete' }))).toBeUndefined();
    expect(retentionRuleProblem(rule({}))).toMatch(/would delete nothing/);
    expect(retentionRuleProblem(rule({ keepLast: -1 }))).toMatch(/keep-last/);
    expect(retentionRuleProblem(rule({ keepLast: 1.5 }))).toMatch(/keep-last/);
    expect(retentionRuleProblem(rule({ deleteOlderThanDays: -2 }))).toMatch(/delete-older-than/);
    expect(retentionRuleProblem(rule({ keepLast: 1, onlyMatching: 'v[' }))).toMatch(/only-matching/);
    expect(retentionRuleProblem(rule({ keepLast: 1, keepMatching: '(' }))).toMatch(/keep-matching/);
    expect(retentionRuleProblem({ pattern: '*', keepLast: 1, untagged: 'maybe' as never })).toMatch(/untagged/);
  });

  it('a grace period protects untagged manifests by push time, measured from now', () => {
    const p = evaluateRetention(
      rule({ untagged: 'delete' }),
      { tags: [], manifests: [manifest('m', 0.5 / 24)] },
      { now: NOW, untaggedGraceMs: HOUR },
    );
    expect(p.deleteManifests).toEqual([]);
    const later = evaluateRetention(
      rule({ untagged: 'delete' }),
      { tags: [], manifests: [manifest('m', 2 / 24)] },
      { now: NOW, untaggedGraceMs: HOUR },
    );
    expect(later.deleteManifests.map((m) => m.digest)).toEqual([d('m')]);
  });
});

describe('immutable tags', () => {
  it('are never deleted by retention and do not count towards keep-last', () => {
    const immutable = (name: string) => (name.startsWith('v') && name !== 'v6' ? 'team/*' : undefined);
    const tags = [...SIX, tag('build-1', 'x', 9), tag('build-2', 'y', 8), tag('build-3', 'z', 7)];
    const result = evaluateRetention(rule({ keepLast: 1 }), { tags, manifests: taggedImages(tags) }, { now: NOW, immutableRule: immutable });
    expect(result.deleteTags.map((t) => t.tag).sort()).toEqual(['build-1', 'build-2', 'build-3']);
    expect(result.keepTags.find((t) => t.tag === 'v1')?.reason).toBe('immutable (rule team/*)');
    expect(result.deleteManifests.map((m) => m.digest).sort()).toEqual([d('x'), d('y'), d('z')]);
  });
});
