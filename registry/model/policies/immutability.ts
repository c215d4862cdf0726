/**
 * Immutable tags: once pushed, a tag of a repository a rule covers keeps its digest. Pushing it
 * again with the same digest is fine; with another digest, or deleting it, is refused with
 * 403 DENIED. A rule covers the tags of the repositories its pattern matches, except the tags
 * one of its exclusions matches (so that `latest` can stay mutable). When several rules
 * cover a repository, a tag is immutable as soon as one of them says so.
 */
import { RegistryError } from '../oci/errors.js';
import { exclusionMatcher, matchesBySpecificity, type TagPredicate } from './tag-patterns.js';

export interface ImmutableRule {
  /** Repository pattern: `team/app`, `team/*`, `*`. */
  pattern: string;
  /** Globs (`latest`, `dev-*`) or `/regex/`, matched against the whole tag. */
  excludes: string[];
}

function excluded(rule: ImmutableRule, tag: string): boolean {
  return rule.excludes.some((exclusion) => {
    let matches: TagPredicate;
    try {
      matches = exclusionMatcher(exclusion);
    } catch {
      // An exclusion that cannot be read protects nothing from the rule: fail closed.
      return false;
    }
    return matches(tag);
  });
}

/** The rule that makes the tag immutable (the most specific one), or undefined. Pure. */
export function immutableRuleFor(rules: readonly ImmutableRule[], repository: string, tag: string): ImmutableRule | undefined {
  return matchesBySpecificity(rules, repository).find((rule) => !excluded(rule, tag));
}

export type ImmutableOperation = 'overwrite' | 'delete';

/** What a client sees: `tag v1 of team/app is immutable (rule team/*)`. */
export function immutableTagDenied(repository: string, tag: string, rule: ImmutableRule, operation: ImmutableOperation): RegistryError {
  const consequence = operation === 'overwrite' ? 'it cannot be pushed with a different digest' : 'it cannot be deleted';
  return new RegistryError('DENIED', `tag ${tag} of ${repository} is immutable (rule ${rule.pattern}); ${consequence}`, {
    detail: { repository, tag, rule: rule.pattern, excludes: rule.excludes },
  });
}

/** What a client sees when deleting a manifest that an immutable tag's index lists. */
export function immutableImageDenied(repository: string, tag: string, rule: ImmutableRule, part: { manifest: string; index: string }): RegistryError {
  return new RegistryError(
    'DENIED',
    `manifest ${part.manifest} is part of tag ${tag} of ${repository} (through index ${part.index}), which is immutable (rule ${rule.pattern}); it cannot be deleted`,
    { detail: { repository, tag, rule: rule.pattern, excludes: rule.excludes, manifest: part.manifest, index: part.index } },
  );
}

/** Reads the rules in force (storage/policy-store.ts). */
export interface ImmutableRuleSource {
  immutableRules(): Promise<ImmutableRule[]>;
}
