/**
 * A private Docker engine for tests (Debian's docker.io: dockerd 20.10): its own data root,
 * exec root, socket and client config, the vfs storage driver and no networking of its own, so it
 * runs in a container without privileges for overlay mounts or iptables. 127.0.0.0/8 registries
 * are insecure (plain HTTP) by default. Undefined when dockerd is not installed.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { runTool, type ToolResult } from './clients.js';
import { startDaemon } from './daemon.js';

const START_TIMEOUT_MS = 60_000;
export const DOCKERD = ['/usr/sbin/dockerd', '/usr/bin/dockerd'].find((path) => existsSync(path));

export interface Dockerd {
  docker(args: string[]): Promise<ToolResult>;
  stop(): Promise<void>;
}

/** `extraArgs` go to dockerd, e.g. `['--registry-mirror', 'http://127.0.0.1:5001']`. */
export async function startDockerd(workDir: string, extraArgs: string[] = []): Promise<Dockerd> {
  if (!DOCKERD) throw new Error('dockerd is not installed (apt-get install docker.io)');
  const socket = join(workDir, 'docker.sock');
  const config = join(workDir, 'client');
  await mkdir(config, { recursive: true });
  const docker = (args: string[]) =>
    runTool('docker', args, { env: { DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: config, DOCKER_BUILDKIT: '0' }, timeoutMs: 10 * 60 * 1000 });
  const daemon = await startDaemon({
    command: DOCKERD,
    args: [
      '--data-root',
      join(workDir, 'data'),
      '--exec-root',
      join(workDir, 'exec'),
      '--pidfile',
      join(workDir, 'docker.pid'),
      '-H',
      `unix://${socket}`,
      '--storage-driver',
      'vfs',
      '--iptables=false',
      '--ip-masq=false',
      '--bridge=none',
      ...extraArgs,
    ],
    ready: () => docker(['version']),
    timeoutMs: START_TIMEOUT_MS,
  });
  return {
    docker,
    stop: () => daemon.stop(),
  };
}
