import { EnvironmentReader } from '../../config/environment.js';
import { DEFAULT_GRACE_SECONDS } from './index.js';

/** What a scheduled run reads from its environment (besides TABLE_NAME, BUCKET_NAME). */
export interface GcSettings {
  /** GC_GRACE_SECONDS, default 3600. */
  graceSeconds: number;
  /** GC_DRY_RUN=true: report only. */
  dryRun: boolean;
  /** GC_SCAN_SEGMENTS, default 8. */
  scanSegments?: number;
  /** GC_CONCURRENCY, default 32. */
  concurrency?: number;
  /** GC_DEADLINE_MARGIN_SECONDS, default 60: no new work starts this long before the Lambda timeout. */
  deadlineMarginSeconds: number;
}

export function gcSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): GcSettings {
  const read = new EnvironmentReader(env);
  return {
    graceSeconds: read.integer('GC_GRACE_SECONDS', 0) ?? DEFAULT_GRACE_SECONDS,
    dryRun: read.flag('GC_DRY_RUN'),
    scanSegments: read.integer('GC_SCAN_SEGMENTS'),
    concurrency: read.integer('GC_CONCURRENCY'),
    deadlineMarginSeconds: read.integer('GC_DEADLINE_MARGIN_SECONDS', 0) ?? 60,
  };
}
