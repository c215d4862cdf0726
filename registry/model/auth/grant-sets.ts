/**
 * Grants as sets of (repository, action): narrowing one set by another, and the `pattern:actions`
 * text that robots and personal access tokens are given their grants in.
 */
import { ACTIONS, isAction, isValidPattern, type Action, type Grant } from './access-model.js';

/** The repositories both patterns match, as one pattern; undefined when none are. */
function patternIntersection(a: string, b: string): string | undefined {
  if (a === '*') return b;
  if (b === '*') return a;
  const aPrefix = a.endsWith('/*') ? a.slice(0, -1) : undefined;
  const bPrefix = b.endsWith('/*') ? b.slice(0, -1) : undefined;
  if (aPrefix === undefined && bPrefix === undefined) return a === b ? a : undefined;
  if (aPrefix === undefined) return a.startsWith(bPrefix!) ? a : undefined;
  if (bPrefix === undefined) return b.startsWith(aPrefix) ? b : undefined;
  // Two namespaces: the deeper one, when it lies inside the other.
  if (aPrefix.startsWith(bPrefix)) return a;
  return bPrefix.startsWith(aPrefix) ? b : undefined;
}

function expanded(actions: readonly Action[]): Set<Action> {
  return actions.includes('admin') ? new Set(ACTIONS) : new Set(actions);
}

/**
 * What both sets of grants allow: a repository and action is in the result exactly when
 * `permittedActions` of each set has it (each pair of grants meets in the narrower pattern, with
 * the actions both give; `admin` counts as every action).
 */
export function intersectGrants(granted: readonly Grant[], limit: readonly Grant[]): Grant[] {
  const result: Grant[] = [];
  for (const a of granted) {
    for (const b of limit) {
      const pattern = patternIntersection(a.pattern, b.pattern);
      if (pattern === undefined) continue;
      const theirs = expanded(b.actions);
      const common = [...expanded(a.actions)].filter((action) => theirs.has(action));
      if (common.length === 0) continue;
      result.push({ pattern, actions: common.includes('admin') ? ['admin'] : common });
    }
  }
  return result;
}

/**
 * `team-a/*:pull,push` → a grant, or why not. Patterns never contain a colon, so the first one
 * separates the pattern from the actions.
 */
export function parseGrantText(value: string): Grant | { problem: string } {
  const colon = value.indexOf(':');
  if (colon <= 0) return { problem: `"${value}": expected <pattern>:<actions>, e.g. 'team-a/*:pull,push'` };
  const pattern = value.slice(0, colon);
  if (!isValidPattern(pattern)) return { problem: `"${pattern}" is not a valid pattern (a repository, a namespace ending in /*, or *)` };
  const words = value
    .slice(colon + 1)
    .split(',')
    .map((word) => word.trim())
    .filter(Boolean);
  const unknown = words.filter((word) => !isAction(word));
  if (words.length === 0 || unknown.length > 0) return { problem: `"${value}": actions must be some of ${ACTIONS.join(',')}` };
  return { pattern, actions: [...new Set(words as Action[])] };
}

export function formatGrant(grant: Grant): string {
  return `${grant.pattern}:${grant.actions.join(',')}`;
}
