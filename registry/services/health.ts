import type { HealthProbe } from '../storage/health-probe.js';

export type CheckStatus = { status: 'ok'; ms: number } | { status: 'failed'; ms: number; error: string };

export interface HealthReport {
  status: 'ok' | 'failed';
  checks: { metadata: CheckStatus; blobs: CheckStatus };
}

export interface HealthOptions {
  /** A check that takes longer has failed (default 2 s: a load balancer's timeout is usually 5 s). */
  timeoutMs?: number;
  /** One probe of each store per this long per process, however often monitors ask (default 5 s). */
  cacheMs?: number;
  now?: () => number;
}

/**
 * Whether this registry can serve: both stores answer, checked in parallel, each with a
 * timeout. The answer is kept a few seconds, so a monitor polling every instance costs at most
 * one GetItem and one HeadBucket per instance per period. An error is reported by its name only
 * (`AccessDenied`, `ResourceNotFoundException`, `TimeoutError`): nothing about the account.
 */
export class HealthService {
  private cached?: { at: number; report: Promise<HealthReport> };
  private readonly timeoutMs: number;
  private readonly cacheMs: number;
  private readonly now: () => number;

  constructor(
    private readonly probe: HealthProbe,
    options: HealthOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 2_000;
    this.cacheMs = options.cacheMs ?? 5_000;
    this.now = options.now ?? Date.now;
  }

  check(): Promise<HealthReport> {
    const now = this.now();
    if (this.cached && now - this.cached.at < this.cacheMs) return this.cached.report;
    const report = this.probeBoth();
    this.cached = { at: now, report };
    return report;
  }

  private async probeBoth(): Promise<HealthReport> {
    const [metadata, blobs] = await Promise.all([
      this.timed((signal) => this.probe.metadata(signal)),
      this.timed((signal) => this.probe.blobs(signal)),
    ]);
    return { status: metadata.status === 'ok' && blobs.status === 'ok' ? 'ok' : 'failed', checks: { metadata, blobs } };
  }

  private async timed(check: (signal: AbortSignal) => Promise<void>): Promise<CheckStatus> {
    const started = performance.now();
    const ms = () => Math.round(performance.now() - started);
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      await check(signal);
      return { status: 'ok', ms: ms() };
    } catch (error) {
      const name = signal.aborted ? 'TimeoutError' : ((error as Error | undefined)?.name ?? 'Error');
      return { status: 'failed', ms: ms(), error: name };
    }
  }
}
