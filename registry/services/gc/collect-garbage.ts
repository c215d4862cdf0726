import { randomUUID } from 'node:crypto';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { silentLogger, type Logger } from '../../support/logger.js';
import { BlobObjectStore } from '../../storage/blob-object-store.js';
import { GcEpoch } from '../../storage/gc-epoch.js';
import { failureRecorder, type SweepContext } from './context.js';
import { DeadlineReached, mark, type MarkResult } from './mark.js';
import { emptyReport, type GcPhase, type GcReport } from './report.js';
import { sweepBlobs } from './sweep-blobs.js';
import { sweepOrphanObjects } from './sweep-objects.js';
import { sweepSessions } from './sweep-uploads.js';

/** The registry's storage: its table and bucket, and clients for them. */
export interface GcTarget {
  dynamo: DynamoDBDocumentClient;
  s3: S3Client;
  tableName: string;
  bucketName: string;
}

export interface GcOptions {
  /**
   * Blobs linked, touched or created within this many seconds before the run started are kept,
   * and so are objects written within it. Must exceed the longest registry request (a Lambda
   * runs at most 15 minutes): the default is an hour. Tests use a second or two.
   */
  graceSeconds?: number;
  /** Compute and report, write nothing. */
  dryRun?: boolean;
  /**
   * Epoch ms after which the run starts no new work (what is in flight finishes): set it a
   * minute or so before the Lambda timeout. A mark that cannot finish by then sweeps nothing.
   */
  deadline?: number;
  logger?: Logger;
  /** Claims other runs made longer ago than this belong to runs that died. Default one hour. */
  staleClaimSeconds?: number;
  /** Parallel Scan segments. Default 8. */
  scanSegments?: number;
  /** Deletions in flight at once. Default 32. */
  concurrency?: number;
  /** The clock, for tests. */
  now?: () => number;
  /** The run's id, stored in the claims it makes. Default a random UUID. */
  runId?: string;
}

export const DEFAULT_GRACE_SECONDS = 3600;
const DEFAULT_STALE_CLAIM_SECONDS = 3600;

/**
 * One garbage collection run: mark (one scan of the table), then sweep blobs, expired upload
 * sessions and orphan objects. Safe against a registry serving pushes and pulls meanwhile, safe
 * to stop anywhere (at a deadline or by a crash), and safe to run next to another run. The
 * protocol and why each race is safe: docs/garbage-collection.md.
 */
export async function collectGarbage(target: GcTarget, options: GcOptions = {}): Promise<GcReport> {
  const now = options.now ?? Date.now;
  const logger = options.logger ?? silentLogger;
  const graceSeconds = options.graceSeconds ?? DEFAULT_GRACE_SECONDS;
  if (!(graceSeconds >= 0)) throw new Error(`graceSeconds must be zero or more, got ${graceSeconds}`);
  const t0 = now();
  const runId = options.runId ?? randomUUID();
  const dryRun = options.dryRun ?? false;
  const report = emptyReport(runId, dryRun, t0, graceSeconds);
  const deadline = options.deadline ?? Number.POSITIVE_INFINITY;
  const graceMs = graceSeconds * 1000;
  // Before the mark: a push that commits from here on stamps its blobs with this epoch or a
  // later one, and this run claims only blobs stamped earlier (gc-epoch.ts). A dry run claims nothing.
  const epoch = dryRun ? 0 : await new GcEpoch(target.dynamo, target.tableName).advance();
  const context: SweepContext = {
    dynamo: target.dynamo,
    tableName: target.tableName,
    bucket: new BlobObjectStore(target.s3, target.bucketName),
    runId,
    epoch,
    t0,
    cutoff: t0 - graceMs,
    graceMs,
    staleClaimBefore: t0 - (options.staleClaimSeconds ?? DEFAULT_STALE_CLAIM_SECONDS) * 1000,
    dryRun,
    concurrency: options.concurrency ?? 32,
    report,
    logger,
    now,
    stop: () => now() >= deadline,
    failed: failureRecorder(report, logger, runId),
  };
  logger.info('gc started', { runId, epoch, dryRun, graceSeconds, table: target.tableName, bucket: target.bucketName, deadline: options.deadline });

  const phases: [GcPhase, (marked: MarkResult, ended: Set<string>) => Promise<{ stopped: boolean; ended?: Set<string> }>][] = [
    ['blobs', (marked) => sweepBlobs(context, marked)],
    ['uploads', (marked) => sweepSessions(context, marked)],
    ['objects', (marked, ended) => sweepOrphanObjects(context, marked, ended)],
  ];
  let phaseStart = now();
  const endPhase = (phase: GcPhase) => {
    const end = now();
    report.phaseMs[phase] = end - phaseStart;
    phaseStart = end;
  };
  const stopIn = (phase: GcPhase) => {
    report.complete = false;
    report.stoppedIn = phase;
  };

  let marked: MarkResult | undefined;
  try {
    marked = await mark(target.dynamo, target.tableName, { segments: options.scanSegments ?? 8, stop: context.stop });
  } catch (error) {
    if (!(error instanceof DeadlineReached)) {
      logger.error('gc mark failed: nothing was swept', { runId, error: { name: (error as Error).name, message: (error as Error).message } });
      throw error;
    }
    stopIn('mark');
  }
  endPhase('mark');
  if (marked) {
    Object.assign(report, {
      itemsScanned: marked.itemsScanned,
      blobRecords: marked.blobRecords,
      manifests: marked.manifests,
      links: marked.links,
      manifestsWithoutBlobList: marked.manifestsWithoutBlobList,
    });
    logger.info('gc marked', {
      runId,
      itemsScanned: marked.itemsScanned,
      blobRecords: marked.blobRecords,
      manifests: marked.manifests,
      links: marked.links,
      sessions: marked.sessions.size,
      ms: report.phaseMs.mark,
    });
    let ended = new Set<string>();
    for (const [phase, run] of phases) {
      if (context.stop()) {
        stopIn(phase);
        break;
      }
      let outcome: { stopped: boolean; ended?: Set<string> };
      try {
        outcome = await run(marked, ended);
      } catch (error) {
        // A listing or a read that failed: what the phase did stands; the next phase still runs.
        context.failed(`${phase} phase`, {}, error);
        outcome = { stopped: false };
      }
      endPhase(phase);
      if (outcome.ended) ended = outcome.ended;
      if (outcome.stopped) {
        stopIn(phase);
        break;
      }
    }
  }
  report.durationMs = now() - t0;
  logger.info('gc finished', { ...report });
  return report;
}
