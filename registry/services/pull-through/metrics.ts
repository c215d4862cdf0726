import type { Logger } from '../../support/logger.js';
import { emfBlock } from '../../support/emf.js';

export type PullThroughEvent = 'hit' | 'miss' | 'revalidated' | 'refetched' | 'stale' | 'upstreamError';

export interface PullThroughOutcome {
  upstream: string;
  event: PullThroughEvent;
  repository: string;
  reference?: string;
  /** For `upstreamError` (and `stale`): the UpstreamError kind, or `digest`, `network`, `status`, `auth`. */
  errorKind?: string;
  /** Bytes copied from the upstream into the cache. */
  bytes?: number;
  /** How long the upstream work took. */
  ms?: number;
}

const NAMESPACE = 'OciRegistry';
const METRIC_OF: Record<PullThroughEvent, string> = {
  hit: 'PullThroughHits',
  miss: 'PullThroughMisses',
  revalidated: 'PullThroughRevalidations',
  refetched: 'PullThroughRefetches',
  stale: 'PullThroughStaleServes',
  upstreamError: 'UpstreamErrors',
};

/**
 * One `pull-through` log line per cache event, in CloudWatch Embedded Metric Format with the
 * dimension `Upstream` (docs/pull-through.md, "Metrics"). Callers pass names and digests only:
 * never a URL, a token or a credential.
 */
export function recordPullThrough(logger: Logger, outcome: PullThroughOutcome): void {
  const values: Record<string, number> = { [METRIC_OF[outcome.event]]: 1 };
  if (outcome.bytes !== undefined) values.BytesCopied = outcome.bytes;
  if (outcome.ms !== undefined && outcome.bytes !== undefined) values.CopyMs = outcome.ms;
  const level = outcome.event === 'upstreamError' || outcome.event === 'stale' ? 'warn' : 'info';
  logger[level]('pull-through', {
    ...outcome,
    ...emfBlock(NAMESPACE, ['Upstream'], values, UNITS),
    Upstream: outcome.upstream,
    ...values,
  });
}

const UNITS: Record<string, string> = { BytesCopied: 'Bytes', CopyMs: 'Milliseconds' };
