/**
 * Runs `work` over `items` with at most `concurrency` calls in flight. Items are taken lazily,
 * so a generator over millions of entries costs nothing up front. Once `stop()` answers true no
 * new item is started; the ones in flight finish. An error thrown by `work` also stops new
 * items, and rejects the call once the others in flight are done. Answers whether `stop()`
 * ended it before the items ran out.
 */
export async function forEachConcurrently<T>(
  items: Iterable<T>,
  concurrency: number,
  work: (item: T) => Promise<void>,
  stop: () => boolean = () => false,
): Promise<{ stopped: boolean }> {
  const iterator = items[Symbol.iterator]();
  let stopped = false;
  let exhausted = false;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (!exhausted && !failure) {
      if (stop()) {
        stopped = true;
        return;
      }
      const next = iterator.next();
      if (next.done) {
        exhausted = true;
        return;
      }
      try {
        await work(next.value);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  if (failure) throw failure.error;
  return { stopped: stopped && !exhausted };
}
