import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';

/**
 * What every local stand-in that runs as a child process needs: a free port to give it, its
 * console kept for error messages, and a stop that always ends it.
 */

/** A port free on `host`, or on every interface when no host is given (for servers that bind all). */
export async function findFreePort(host?: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolveListen);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise((resolveClose) => server.close(resolveClose));
  return port;
}

/**
 * Keeps the last `chars` characters of the child's console: to explain a failed start, and so
 * that an undrained pipe can never block the child. Nothing is printed.
 */
export function keepOutputTail(child: ChildProcess, chars = 4_000): () => string {
  let tail = '';
  const append = (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-chars);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  return () => tail.trim();
}

/** Whether a process with this id exists (EPERM: it does, but belongs to someone else). */
export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/**
 * Returns an idempotent stop(): SIGTERM, then SIGKILL after `graceMs`. Until it is called, the
 * child is also killed if this process exits, so a crashed launcher does not leave it running.
 */
export function stopChildProcess(child: ChildProcess, graceMs = 5_000): () => Promise<void> {
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  let stopping: Promise<void> | undefined;
  return () =>
    (stopping ??= (async () => {
      process.off('exit', killOnExit);
      if (hasExited(child)) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    })());
}
