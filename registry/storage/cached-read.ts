/**
 * A read shared by a warm instance for a few seconds: concurrent callers share one read, a failed
 * read is forgotten at once (the next caller reads again), and `clear()` forgets a value the
 * instance itself just changed. For small partitions read whole on every token request (the access
 * policy, the workload trusts); docs/storage.md, "Consistency".
 */
export class CachedRead<T> {
  private cached: { value: Promise<T>; until: number } | undefined;

  constructor(
    private readonly read: () => Promise<T>,
    private readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(): Promise<T> {
    const now = this.now();
    if (this.cached && now < this.cached.until) return this.cached.value;
    const value = this.read();
    const entry = { value, until: now + this.maxAgeMs };
    this.cached = entry;
    value.catch(() => {
      if (this.cached === entry) this.cached = undefined;
    });
    return value;
  }

  clear(): void {
    this.cached = undefined;
  }
}
