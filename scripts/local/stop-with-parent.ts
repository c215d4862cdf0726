/**
 * Calls `onOrphaned` once the process that started this one has ended, however it ended (a
 * SIGKILL included, which it cannot pass on): the parent id changes when the kernel hands an
 * orphan to init or a subreaper. For `npm start`, whose parent is the npm process: a supervisor
 * that kills npm stops the registry and its stand-ins too, instead of leaving them holding the
 * ports and the data dir.
 */
export function stopWithParent(onOrphaned: () => void, intervalMs = 500): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onOrphaned();
  }, intervalMs);
  timer.unref();
}
