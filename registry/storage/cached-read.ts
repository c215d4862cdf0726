/**
 * One read shared for `ms`: every call within it gets the same promise (concurrent requests
 * share one read); a failed read is forgotten at once, so the next call reads again.
 */
export class CachedRead<T> {
  private cached: { value: Promise<T>; until: number } | undefined;

  constructor(
    private readonly ms: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(read: () => Promise<T>): Promise<T> {
    const now = this.now();
    if (this.cached && now < this.cached.until) return this.cached.value;
    const value = read();
    const entry = { value, until: now + this.ms };
    this.cached = entry;
    value.catch(() => {
      if (this.cached === entry) this.cached = undefined;
    });
    return value;
  }

  /** After a write: the next call reads again. */
  forget(): void {
    this.cached = undefined;
  }
}
