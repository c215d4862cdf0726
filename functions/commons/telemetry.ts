import type { Logger } from './logger.js';

export interface RequestOutcome {
  requestId?: string;
  operation: string;
  method: string;
  /** The path only: query strings may carry presigned credentials or upload digests. */
  path: string;
  status: number;
  durationMs: number;
  bytesRedirected?: number;
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
  logger.info('request', {
    ...outcome,
    _aws: {
      Timestamp: Date.now(),
      CloudWatchMetrics: [
        {
          Namespace: NAMESPACE,
          Dimensions: [['Operation']],
          Metrics: [
            { Name: 'Requests', Unit: 'Count' },
            { Name: 'Errors', Unit: 'Count' },
            { Name: 'Pushes', Unit: 'Count' },
            { Name: 'Pulls', Unit: 'Count' },
            { Name: 'BytesRedirected', Unit: 'Bytes' },
            { Name: 'Latency', Unit: 'Milliseconds' },
          ],
        },
      ],
    },
    Operation: outcome.operation,
    Requests: 1,
    Errors: outcome.status >= 500 ? 1 : 0,
    Pushes: succeeded && PUSH_OPERATIONS.has(outcome.operation) ? 1 : 0,
    Pulls: succeeded && PULL_OPERATIONS.has(outcome.operation) ? 1 : 0,
    BytesRedirected: outcome.bytesRedirected ?? 0,
    Latency: outcome.durationMs,
  });
}
