import type { Logger } from '../support/logger.js';
import { emfBlock } from '../support/emf.js';

export interface RequestOutcome {
  requestId?: string;
  operation: string;
  method: string;
  /** The path only: query strings may carry presigned credentials or upload digests. */
  path: string;
  status: number;
  durationMs: number;
  bytesRedirected?: number;
  /** `aborted`: the client went away or stopped sending mid-request; logged at warn, never counted as an error. */
  outcome?: 'aborted';
}

const NAMESPACE = 'OciRegistry';
const PUSH_OPERATIONS = new Set(['putManifest']);
const PULL_OPERATIONS = new Set(['getManifest']);

/**
 * One JSON line per request that is both the access log and, in CloudWatch Embedded Metric
 * Format, the per-operation metrics the dashboard and alarms read: no agent, no API calls.
 */
export function recordRequest(logger: Logger, outcome: RequestOutcome): void {
  const succeeded = outcome.status < 400;
  const values: Record<string, number> = {
    Requests: 1,
    Errors: outcome.status >= 500 && outcome.outcome !== 'aborted' ? 1 : 0,
    Latency: outcome.durationMs,
  };
  // Each metric of each operation is billed while published: name the specific ones only
  // where they mean something.
  if (PUSH_OPERATIONS.has(outcome.operation)) values.Pushes = succeeded ? 1 : 0;
  if (PULL_OPERATIONS.has(outcome.operation)) values.Pulls = succeeded ? 1 : 0;
  if (outcome.bytesRedirected !== undefined) values.BytesRedirected = outcome.bytesRedirected;
  logger[outcome.outcome === 'aborted' ? 'warn' : 'info']('request', {
    ...outcome,
    ...emfBlock(NAMESPACE, ['Operation'], values, UNITS),
    Operation: outcome.operation,
    ...values,
  });
}

const UNITS: Record<string, string> = { BytesRedirected: 'Bytes', Latency: 'Milliseconds' };
