/**
 * Docker token scopes: `repository:<name>:<action>[,<action>]` and `registry:catalog:*`.
 * The same shape is the `access` claim of a registry token.
 */
export interface ResourceScope {
  type: string;
  name: string;
  actions: string[];
}

export const CATALOG_SCOPE: ResourceScope = { type: 'registry', name: 'catalog', actions: ['*'] };

/** Answers undefined for a malformed scope; names may hold colons only before the last one. */
export function parseScope(scope: string): ResourceScope | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter(Boolean);
  const name = scope.slice(first + 1, last);
  if (!name || actions.length === 0) return undefined;
  return { type: scope.slice(0, first), name, actions };
}

export function formatScope(scope: ResourceScope): string {
  return `${scope.type}:${scope.name}:${scope.actions.join(',')}`;
}
