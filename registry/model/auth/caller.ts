import { permittedActions, type Action, type Grant } from './access-model.js';
import type { ResourceScope } from './scopes.js';

/** Who is calling, as far as a request needs to know: what its token lets it do. */
export interface Caller {
  /** The token's access claim covers the action on the repository. */
  holds(repository: string, action: Action): boolean;
  /** The caller's grants would allow the action, whether or not the token asked for it. */
  isAllowed(repository: string, action: Action): boolean;
  /** Who the token was issued to (a user or `robot$<name>`); absent in open mode. Recorded on pushes (`pushedBy`) and in the audit log. */
  subject?: string;
}

/** Registry:2's open mode: no authentication, everything allowed. */
export const ANYONE: Caller = { holds: () => true, isAllowed: () => true };

export function tokenCaller(access: readonly ResourceScope[], grants: readonly Grant[], subject?: string): Caller {
  return {
    subject,
    holds: (repository, action) => access.some((scope) => scope.type === 'repository' && scope.name === repository && scope.actions.includes(action)),
    isAllowed: (repository, action) => permittedActions(grants, repository).has(action),
  };
}
