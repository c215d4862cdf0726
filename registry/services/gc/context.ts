import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Logger } from '../../support/logger.js';
import type { BlobObjectStore } from '../../storage/blob-object-store.js';
import type { GcReport } from './report.js';

/** Everything a sweep needs, for one run. */
export interface SweepContext {
  dynamo: DynamoDBDocumentClient;
  tableName: string;
  bucket: BlobObjectStore;
  runId: string;
  /** The GC epoch this run began (gc-epoch.ts): it claims only blobs stamped with an earlier one. */
  epoch: number;
  /** Epoch ms the run started. */
  t0: number;
  /** Epoch ms: blobs not linked or touched since are old enough to go; objects not written since too. */
  cutoff: number;
  graceMs: number;
  /** Claims by other runs older than this (epoch ms) belong to runs that died. */
  staleClaimBefore: number;
  dryRun: boolean;
  concurrency: number;
  report: GcReport;
  logger: Logger;
  now: () => number;
  /** True once no new work may start. */
  stop: () => boolean;
  /** Counts and logs a failed step; the run carries on. */
  failed: (step: string, fields: Record<string, unknown>, error: unknown) => void;
}

/** At most this many failures are logged one by one; the rest are only counted. */
const LOGGED_FAILURES = 50;

export function failureRecorder(report: GcReport, logger: Logger, runId: string): SweepContext['failed'] {
  return (step, fields, error) => {
    report.errors++;
    if (report.errors <= LOGGED_FAILURES) {
      logger.warn('gc step failed', {
        runId,
        step,
        ...fields,
        error: { name: (error as Error)?.name, message: (error as Error)?.message },
      });
    } else if (report.errors === LOGGED_FAILURES + 1) {
      logger.warn('gc further failures are counted, not logged', { runId });
    }
  };
}
