import { RegistryError } from '../model/oci/errors.js';

export interface PageRequest {
  limit?: number;
  last?: string;
}

/**
 * Reads `n` and `last`; `n` must be a non-negative integer, and `last` something the listing
 * can hold (a tag, a repository name: `isListed`), checked before it becomes a start key.
 */
export function pageRequest(query: URLSearchParams, maximum: number, isListed: (last: string) => boolean): PageRequest {
  const n = query.get('n');
  const last = query.get('last') || undefined;
  if (last !== undefined && !isListed(last)) {
    throw new RegistryError('UNSUPPORTED', 'last is not a value this listing holds', { refusal: 'badRequest', detail: { last: last.slice(0, 256) } });
  }
  if (n === null || n === '') return { last };
  const limit = Number(n);
  if (!Number.isInteger(limit) || limit < 0) {
    throw new RegistryError('UNSUPPORTED', 'n must be a non-negative integer', { refusal: 'badRequest', detail: { n } });
  }
  return { limit: Math.min(limit, maximum), last };
}
