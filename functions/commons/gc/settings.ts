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
  return {
    graceSeconds: wholeNumber(env, 'GC_GRACE_SECONDS') ?? DEFAULT_GRACE_SECONDS,
    dryRun: ['1', 'true', 'yes'].includes((env.GC_DRY_RUN ?? '').toLowerCase()),
    scanSegments: wholeNumber(env, 'GC_SCAN_SEGMENTS', 1),
    concurrency: wholeNumber(env, 'GC_CONCURRENCY', 1),
    deadlineMarginSeconds: wholeNumber(env, 'GC_DEADLINE_MARGIN_SECONDS') ?? 60,
  };
}

function wholeNumber(env: NodeJS.ProcessEnv, name: string, minimum = 0): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < minimum) throw new Error(`${name} must be an integer of at least ${minimum}, got "${raw}"`);
  return value;
}
