/**
 * Progress of a push on stderr: on a terminal, one line redrawn in place (a bar, bytes, rate,
 * what is being verified); otherwise plain lines, one per event and a status line every few
 * seconds, which read well in CI logs.
 */
import type { Writable } from 'node:stream';

const MiB = 1024 * 1024;
const BAR_WIDTH = 28;

export interface ProgressOptions {
  /** Redraw one line in place; defaults to whether the stream is a terminal. */
  tty?: boolean;
  /** Nothing at all. */
  quiet?: boolean;
  /** Seconds between status lines when not on a terminal. */
  plainIntervalSeconds?: number;
  now?: () => number;
}

export class Progress {
  private readonly tty: boolean;
  private readonly quiet: boolean;
  private readonly now: () => number;
  private readonly plainIntervalMs: number;
  private totalBytes = 0;
  private totalBlobs = 0;
  private sentBytes = 0;
  private doneBlobs = 0;
  private startedAt = 0;
  private readonly verifying = new Map<string, { verified: number; size: number }>();
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;
  private lastPlainAt = 0;
  private drawn = false;
  private stopped = false;
  private started = false;

  constructor(
    private readonly out: Writable & { isTTY?: boolean; columns?: number },
    options: ProgressOptions = {},
  ) {
    this.tty = options.tty ?? Boolean(out.isTTY);
    this.quiet = options.quiet ?? false;
    this.now = options.now ?? Date.now;
    this.plainIntervalMs = (options.plainIntervalSeconds ?? 5) * 1000;
  }

  /** Begins counting: `bytes` to upload in `blobs` blobs. */
  start(bytes: number, blobs: number): void {
    this.totalBytes = bytes;
    this.totalBlobs = blobs;
    this.started = true;
    this.startedAt = this.now();
    this.lastPlainAt = this.startedAt;
    if (this.quiet) return;
    this.timer = setInterval(() => this.tick(), this.tty ? 100 : 1000);
    this.timer.unref();
  }

  /** Bytes went out (negative: a failed attempt's bytes, to be sent again). */
  sent(bytes: number): void {
    this.sentBytes += bytes;
    this.dirty = true;
  }

  /** Bytes that need not be sent after all (a blob mounted from another repository). */
  discount(bytes: number): void {
    this.totalBytes -= bytes;
    this.dirty = true;
  }

  blobDone(): void {
    this.doneBlobs++;
    this.dirty = true;
  }

  verification(digest: string, verified: number, size: number): void {
    this.verifying.set(digest, { verified, size });
    this.dirty = true;
  }

  verified(digest: string): void {
    this.verifying.delete(digest);
    this.dirty = true;
  }

  /** A line of its own (a blob skipped, mounted, done; a retry). */
  note(message: string): void {
    if (this.quiet) return;
    this.clear();
    this.out.write(`${message}\n`);
    if (this.tty && this.timer) this.draw();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.quiet || !this.started) return;
    if (this.tty) {
      this.draw();
      this.out.write('\n');
      this.drawn = false;
    } else {
      this.out.write(`${this.status()}\n`);
    }
  }

  /** Bytes per second since start. */
  rate(): number {
    const seconds = (this.now() - this.startedAt) / 1000;
    return seconds > 0 ? this.sentBytes / seconds : 0;
  }

  status(): string {
    const fraction = this.totalBytes > 0 ? Math.min(1, this.sentBytes / this.totalBytes) : 1;
    const parts = [
      `${this.doneBlobs}/${this.totalBlobs} blobs`,
      `${formatBytes(this.sentBytes)} / ${formatBytes(this.totalBytes)} (${Math.floor(fraction * 100)}%)`,
      `${(this.rate() / 1e6).toFixed(1)} MB/s`,
    ];
    for (const [digest, { verified, size }] of this.verifying) {
      parts.push(`verifying ${shortDigest(digest)} ${size > 0 ? Math.floor((verified / size) * 100) : 100}%`);
    }
    return parts.join(', ');
  }

  private tick(): void {
    if (this.tty) {
      if (this.dirty) this.draw();
    } else if (this.now() - this.lastPlainAt >= this.plainIntervalMs) {
      this.lastPlainAt = this.now();
      this.out.write(`${this.status()}\n`);
    }
  }

  private draw(): void {
    const fraction = this.totalBytes > 0 ? Math.min(1, this.sentBytes / this.totalBytes) : 1;
    const filled = Math.round(fraction * BAR_WIDTH);
    const bar = `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${' '.repeat(BAR_WIDTH - filled)}]`;
    const line = `${bar} ${this.status()}`;
    const width = this.out.columns ?? 120;
    this.out.write(`\r\x1b[K${line.length > width - 1 ? line.slice(0, width - 1) : line}`);
    this.drawn = true;
    this.dirty = false;
  }

  private clear(): void {
    if (this.tty && this.drawn) {
      this.out.write('\r\x1b[K');
      this.drawn = false;
    }
  }
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < MiB) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 * MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  return `${(bytes / 1024 / MiB).toFixed(2)} GiB`;
}

export function shortDigest(digest: string): string {
  const [algorithm, hex] = digest.split(':');
  return `${algorithm}:${(hex ?? '').slice(0, 12)}`;
}
