/**
 * A daemon a test starts for itself (containerd, dockerd): spawned, waited for until its own
 * client answers, and stopped with SIGTERM (SIGKILL after a grace period).
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Daemon {
  stop(): Promise<void>;
}

export async function startDaemon(options: {
  command: string;
  args: string[];
  /** Resolves once the daemon answers (e.g. `ctr version`); rejects until then. */
  ready: () => Promise<unknown>;
  timeoutMs: number;
  graceMs?: number;
}): Promise<Daemon> {
  const daemon = spawn(options.command, options.args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  daemon.stderr.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-4000);
  });
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    try {
      await options.ready();
      break;
    } catch (error) {
      if (daemon.exitCode !== null || Date.now() > deadline) {
        daemon.kill('SIGKILL');
        throw new Error(`${options.command} did not start: ${String(error)}\n${log}`);
      }
      await sleep(250);
    }
  }
  return {
    async stop() {
      if (daemon.exitCode !== null) return;
      const exited = new Promise((resolve) => daemon.once('exit', resolve));
      daemon.kill('SIGTERM');
      const timer = setTimeout(() => daemon.kill('SIGKILL'), options.graceMs ?? 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
