/** Undo steps that run on success, on failure and on Ctrl-C/SIGTERM alike. */
import type { ChildProcess } from 'node:child_process';

const steps: Array<() => Promise<void>> = [];
const children = new Set<ChildProcess>();

/**
 * Registers an undo step (steps run last-registered first) and returns a function that
 * runs it right away instead; either way it runs once.
 */
export function defer(step: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  const once = () => (running ??= step());
  steps.push(once);
  return () => {
    const index = steps.indexOf(once);
    if (index >= 0) steps.splice(index, 1);
    return once();
  };
}

/** Remembers a child process so that it is killed if it is still running at clean-up. */
export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export async function cleanUp(): Promise<void> {
  for (let step = steps.pop(); step; step = steps.pop()) {
    await step().catch((error: unknown) => console.error('clean-up step failed:', error));
  }
  await Promise.all([...children].map(terminate));
}

/** SIGTERM, so that it can stop its own children, then SIGKILL if it is still there after 10 s. */
async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export function cleanUpOnSignals(): void {
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: cleaning up…`);
      void cleanUp().finally(() => process.exit(code));
    });
  }
}
