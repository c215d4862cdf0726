import type { Logger } from '../../support/logger.js';
import type { PullCounts } from '../../storage/pull-counts.js';

/** How often an instance writes what it counted, unless told otherwise (PULL_EVENTS_FLUSH_SECONDS). */
const FLUSH_SECONDS = 60;

/**
 * Pull events, when turned on (PULL_EVENTS): each instance adds pulls up in memory, per
 * repository, tag and minute, and writes each minute's sums as one counter update per key, off
 * the request path (a timer): a pull never waits for it, and with pull events off nothing of it
 * exists. The counter's stream record becomes the event (docs/events.md). Counts an instance
 * holds when it is stopped or frozen for good are lost: pull events are a summary, not a ledger.
 */
export class PullCounter {
  private counts = new Map<string, { minute: string; repository: string; tag: string; pulls: number }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: PullCounts,
    private readonly logger: Logger,
    private readonly flushSeconds = FLUSH_SECONDS,
  ) {}

  /** A manifest GET by `reference` (a tag, or a digest for pulls by digest). Never throws, never waits. */
  record(repository: string, reference: string, now = Date.now()): void {
    const minute = new Date(now).toISOString().slice(0, 16);
    const key = `${minute} ${repository} ${reference}`;
    const entry = this.counts.get(key);
    if (entry) entry.pulls++;
    else this.counts.set(key, { minute, repository, tag: reference, pulls: 1 });
    if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.flushSeconds * 1000);
      this.timer.unref();
    }
  }

  /** Writes everything counted so far; what fails is added back for the next flush. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const counts = [...this.counts.values()];
    this.counts = new Map();
    await Promise.all(
      counts.map((count) =>
        this.store.add(count.minute, count.repository, count.tag, count.pulls).catch((error: unknown) => {
          this.logger.warn('pull count not written', { repository: count.repository, error: String(error) });
        }),
      ),
    );
  }
}
