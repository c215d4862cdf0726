/**
 * The permission model. Repositories are grouped in namespaces by their path prefixes
 * (`team-a/...`); a grant gives actions on the repositories a pattern matches:
 * - `team-a/app`: that repository only;
 * - `team-a/*`: every repository below `team-a/`, at any depth;
 * - `*`: every repository.
 * `admin` includes pull, push and delete.
 */
/** The Cognito group whose members may do everything, unless ADMIN_GROUP names another. */
export const DEFAULT_ADMIN_GROUP = 'registry-admins';

export const ACTIONS = ['pull', 'push', 'delete', 'admin'] as const;
export type Action = (typeof ACTIONS)[number];

export interface Grant {
  pattern: string;
  actions: Action[];
}

const NAME_PART = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const PATTERN = new RegExp(`^(\\*|${NAME_PART}(?:/${NAME_PART})*(?:/\\*)?)$`);

export function isValidPattern(pattern: string): boolean {
  return PATTERN.test(pattern);
}

export function isAction(value: string): value is Action {
  return (ACTIONS as readonly string[]).includes(value);
}

export function patternMatches(pattern: string, repository: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('/*')) return repository.startsWith(pattern.slice(0, -1));
  return pattern === repository;
}

/** The actions the grants allow on one repository, with `admin` expanded. */
export function permittedActions(grants: readonly Grant[], repository: string): Set<Action> {
  const permitted = new Set<Action>();
  for (const grant of grants) {
    if (!patternMatches(grant.pattern, repository)) continue;
    for (const action of grant.actions) {
      permitted.add(action);
      if (action === 'admin') for (const implied of ACTIONS) permitted.add(implied);
    }
  }
  return permitted;
}

/** What a public pattern gives anyone, logged in or not: pull. */
export function publicGrants(patterns: readonly string[]): Grant[] {
  return patterns.map((pattern) => ({ pattern, actions: ['pull'] }));
}
