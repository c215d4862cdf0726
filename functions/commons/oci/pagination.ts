import { RegistryError } from './errors.js';

export interface PageRequest {
  limit?: number;
  last?: string;
}

/** Reads `n` and `last`; `n` must be a non-negative integer. */
export function pageRequest(query: URLSearchParams, maximum: number): PageRequest {
  const n = query.get('n');
  const last = query.get('last') ?? undefined;
  if (n === null || n === '') return { last };
  const limit = Number(n);
  if (!Number.isInteger(limit) || limit < 0) {
    throw new RegistryError('UNSUPPORTED', 'n must be a non-negative integer', { status: 400, detail: { n } });
  }
  return { limit: Math.min(limit, maximum), last };
}
