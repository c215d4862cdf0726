import { describe, expect, it } from 'vitest';
import { immutableRuleFor, immutableTagDenied } from '../../../../registry/model/policies/immutability.js';
import {
  exclusionMatcher,
  exclusionProblem,
  matchesBySpecificity,
  mostSpecificMatch,
  wholeTagRegex,
} from '../../../../registry/model/policies/tag-patterns.js';

describe('immutable tag rules', () => {
  it('covers every tag of the repositories the pattern matches', () => {
    const rules = [{ pattern: 'team/*', excludes: [] }];
    expect(immutableRuleFor(rules, 'team/app', 'v1')?.pattern).toBe('team/*');
    expect(immutableRuleFor(rules, 'team/app/api', 'latest')?.pattern).toBe('team/*');
    expect(immutableRuleFor(rules, 'other/app', 'v1')).toBeUndefined();
    expect(immutableRuleFor(rules, 'team', 'v1')).toBeUndefined();
  });

  it('leaves excluded tags mutable: exact names, globs and /regexes/', () => {
    const rules = [{ pattern: 'team/app', excludes: ['latest', 'dev-*', 'rc?', '/nightly-[0-9]{8}/'] }];
    for (const mutable of ['latest', 'dev-', 'dev-feature', 'rc1', 'nightly-20250131']) {
      expect(immutableRuleFor(rules, 'team/app', mutable), mutable).toBeUndefined();
    }
    for (const immutable of ['v1', 'latest2', 'my-dev-1', 'rc10', 'nightly-2025', 'xnightly-20250131']) {
      expect(immutableRuleFor(rules, 'team/app', immutable), immutable).toBeDefined();
    }
  });

  it('with several rules, a tag is immutable if any rule says so, and the most specific such rule is named', () => {
    const rules = [
      { pattern: '*', excludes: ['latest'] },
      { pattern: 'team/*', excludes: [] },
      { pattern: 'team/app', excludes: ['latest', 'v*'] },
    ];
    expect(immutableRuleFor(rules, 'team/app', 'v1')?.pattern).toBe('team/*');
    expect(immutableRuleFor(rules, 'team/app', 'latest')?.pattern).toBe('team/*');
    expect(immutableRuleFor(rules, 'team/app', 'build-7')?.pattern).toBe('team/app');
    expect(immutableRuleFor(rules, 'other', 'latest')).toBeUndefined();
    expect(immutableRuleFor(rules, 'other', 'v1')?.pattern).toBe('*');
  });

  it('fails closed: an exclusion that cannot be read excludes nothing', () => {
    expect(immutableRuleFor([{ pattern: '*', excludes: ['/([/'] }], 'a', 'latest')).toBeDefined();
  });

  it('refuses with 403 DENIED and a message naming the tag, the repository and the rule', () => {
    const error = immutableTagDenied('team/app', 'v1', { pattern: 'team/*', excludes: ['latest'] }, 'overwrite');
    expect(error.status).toBe(403);
    expect(error.code).toBe('DENIED');
    expect(error.message).toMatch(/^tag v1 of team\/app is immutable \(rule team\/\*\)/);
    expect(JSON.parse(error.toBody())).toEqual({
      errors: [
        {
          code: 'DENIED',
          message: 'tag v1 of team/app is immutable (rule team/*); it cannot be pushed with a different digest',
          detail: { repository: 'team/app', tag: 'v1', rule: 'team/*', excludes: ['latest'] },
        },
      ],
    });
    expect(immutableTagDenied('team/app', 'v1', { pattern: 'team/*', excludes: [] }, 'delete').message).toMatch(/cannot be deleted$/);
  });
});

describe('tag patterns', () => {
  it('regexes match the whole tag', () => {
    const matches = wholeTagRegex('v[0-9]+');
    expect(['v1', 'v10'].map(matches)).toEqual([true, true]);
    expect(['v1-rc', 'xv1', 'v'].map(matches)).toEqual([false, false, false]);
    expect(wholeTagRegex('a|b')('ab')).toBe(false);
    expect(() => wholeTagRegex('v[')).toThrow(/not a valid regular expression/);
    expect(() => wholeTagRegex('')).toThrow(/empty/);
  });

  it('globs treat regex characters literally', () => {
    expect(exclusionMatcher('v1.0')('v1.0')).toBe(true);
    expect(exclusionMatcher('v1.0')('v1x0')).toBe(false);
    expect(exclusionMatcher('a+b*')('a+b-anything')).toBe(true);
    expect(exclusionMatcher('a+b*')('aab')).toBe(false);
    expect(exclusionMatcher('*')('anything')).toBe(true);
    expect(exclusionProblem('')).toMatch(/empty/);
    expect(exclusionProblem('/[/')).toMatch(/not a valid/);
    expect(exclusionProblem('/')).toBeUndefined();
    expect(exclusionMatcher('/')('/')).toBe(true);
  });

  it('orders repository patterns from most to least specific', () => {
    const items = [{ pattern: '*' }, { pattern: 'a/*' }, { pattern: 'a/b/*' }, { pattern: 'a/b/c' }, { pattern: 'x/*' }];
    expect(matchesBySpecificity(items, 'a/b/c').map((item) => item.pattern)).toEqual(['a/b/c', 'a/b/*', 'a/*', '*']);
    expect(mostSpecificMatch(items, 'a/z')?.pattern).toBe('a/*');
    expect(mostSpecificMatch(items, 'q')?.pattern).toBe('*');
    expect(mostSpecificMatch([], 'q')).toBeUndefined();
  });
});
