/**
 * How policies name tags, and which repository policy applies when several patterns match.
 *
 * Tag regular expressions (retention's `--keep-matching` / `--only-matching`) are JavaScript
 * regular expressions matched against the WHOLE tag: `v.*` matches `v1.2` but not `dev1`;
 * `v*` is a regex too (any number of `v`), not a glob.
 *
 * Immutability exclusions are globs (`latest`, `dev-*`, `rc?`: `*` any run of characters, `?`
 * one character, everything else literal), or a regular expression written between slashes
 * (`/dev-[0-9]+/`), again matched against the whole tag.
 */
import { isValidPattern, patternMatches } from '../auth/access-model.js';

/** Tags are at most 128 characters; a regex longer than this is a mistake (or an attack). */
const MAX_EXPRESSION_LENGTH = 512;

export type TagPredicate = (tag: string) => boolean;

/** Why an expression cannot be used; undefined when it can. */
export function regexProblem(expression: string): string | undefined {
  if (expression.length === 0) return 'the regular expression is empty';
  if (expression.length > MAX_EXPRESSION_LENGTH) return `the regular expression is longer than ${MAX_EXPRESSION_LENGTH} characters`;
  try {
    new RegExp(expression);
    return undefined;
  } catch (error) {
    return `not a valid regular expression: ${(error as Error).message}`;
  }
}

/** A regex matched against the whole tag. Throws on an invalid expression. */
export function wholeTagRegex(expression: string): TagPredicate {
  const problem = regexProblem(expression);
  if (problem) throw new Error(`${JSON.stringify(expression)}: ${problem}`);
  const regex = new RegExp(`^(?:${expression})$`);
  return (tag) => regex.test(tag);
}

/** `/re/` is a regex; anything else a glob. */
export function isRegexExclusion(exclusion: string): boolean {
  return exclusion.length >= 2 && exclusion.startsWith('/') && exclusion.endsWith('/');
}

export function exclusionProblem(exclusion: string): string | undefined {
  if (exclusion.length === 0) return 'the exclusion is empty';
  if (isRegexExclusion(exclusion)) return regexProblem(exclusion.slice(1, -1));
  if (exclusion.length > MAX_EXPRESSION_LENGTH) return `the exclusion is longer than ${MAX_EXPRESSION_LENGTH} characters`;
  return undefined;
}

/** A glob (`dev-*`) or a `/regex/`, matched against the whole tag. Throws on an invalid one. */
export function exclusionMatcher(exclusion: string): TagPredicate {
  const problem = exclusionProblem(exclusion);
  if (problem) throw new Error(`${JSON.stringify(exclusion)}: ${problem}`);
  if (isRegexExclusion(exclusion)) return wholeTagRegex(exclusion.slice(1, -1));
  const source = [...exclusion]
    .map((character) => (character === '*' ? '.*' : character === '?' ? '.' : character.replace(/[\\^$.|+()[\]{}]/g, '\\$&')))
    .join('');
  const regex = new RegExp(`^${source}$`);
  return (tag) => regex.test(tag);
}

/** Repository patterns are those of access grants: `team/app`, `team/*`, `*`. */
export function isValidRepositoryPattern(pattern: string): boolean {
  return isValidPattern(pattern);
}

/**
 * How specific a repository pattern is: an exact name beats any wildcard, a longer prefix
 * beats a shorter one, `*` comes last.
 */
export function patternSpecificity(pattern: string): number {
  if (pattern === '*') return 0;
  if (pattern.endsWith('/*')) return pattern.length;
  return 1_000_000 + pattern.length;
}

/** Of the items whose pattern matches the repository, the one with the most specific pattern. */
export function mostSpecificMatch<T extends { pattern: string }>(items: readonly T[], repository: string): T | undefined {
  let best: T | undefined;
  for (const item of items) {
    if (!patternMatches(item.pattern, repository)) continue;
    if (!best || patternSpecificity(item.pattern) > patternSpecificity(best.pattern)) best = item;
  }
  return best;
}

/** Every item whose pattern matches, most specific first. */
export function matchesBySpecificity<T extends { pattern: string }>(items: readonly T[], repository: string): T[] {
  return items
    .filter((item) => patternMatches(item.pattern, repository))
    .sort((a, b) => patternSpecificity(b.pattern) - patternSpecificity(a.pattern) || (a.pattern < b.pattern ? -1 : 1));
}
