/** Starts our registry and the reference one as child processes, and reads their memory and CPU time. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findFreePort } from '../local/child-processes.js';
import { track } from './cleanup.js';

export type RegistryKind = 'ours' | 'reference';

export interface BenchRegistry {
  /** host:port, as skopeo's docker:// references want it. */
  host: string;
  url: string;
  startupSeconds: number;
  /** The processes whose memory counts: `registry` itself, and its children by command name. */
  processes: Record<string, number>;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 60_000;
const usedPorts = new Set<number>();

export async function startRegistry(kind: RegistryKind, dataDir: string): Promise<BenchRegistry> {
  const port = await unusedPort();
  const started = performance.now();
  const child = track(kind === 'ours' ? spawnOurs(dataDir, port) : await spawnReference(dataDir, port));
  const url = `http://127.0.0.1:${port}`;
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  try {
    await waitForV2(url, child);
  } catch (error) {
    await stopProcess(child);
    throw new Error(`${kind} registry did not start: ${(error as Error).message}\n${stderr}`);
  }
  const startupSeconds = (performance.now() - started) / 1000;
  const processes: Record<string, number> = { registry: child.pid! };
  for (const pid of await childPids(child.pid!)) processes[await commandName(pid)] = pid;
  return { host: `127.0.0.1:${port}`, url, startupSeconds, processes, stop: () => stopProcess(child) };
}

/** A free loopback port not used before in this bench, so skopeo's blob-info cache has no location on it from an earlier run. */
async function unusedPort(): Promise<number> {
  for (;;) {
    const port = await findFreePort();
    if (usedPorts.has(port)) continue;
    usedPorts.add(port);
    return port;
  }
}

function spawnOurs(dataDir: string, port: number): ChildProcess {
  // `node --import tsx` rather than `npx tsx`: one node process is the registry, no wrappers.
  const entry = join(import.meta.dirname, 'registry-child.ts');
  const env = { ...process.env, BENCH_DATA_DIR: dataDir, BENCH_PORT: String(port), NODE_NO_WARNINGS: '1' };
  // BENCH_CPU_PROF_DIR: a V8 CPU profile of our registry process, written there when it stops.
  const profile = process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];
  return spawn(process.execPath, [...profile, '--import', 'tsx', entry], { env, stdio: ['pipe', 'ignore', 'pipe'] });
}

async function spawnReference(dataDir: string, port: number): Promise<ChildProcess> {
  const configPath = join(dataDir, 'config.yml');
  await writeFile(
    configPath,
    [
      'version: 0.1',
      'log: { level: error, accesslog: { disabled: true } }',
      `storage: { filesystem: { rootdirectory: ${JSON.stringify(join(dataDir, 'storage'))} }, delete: { enabled: true } }`,
      `http: { addr: "127.0.0.1:${port}" }`,
      '',
    ].join('\n'),
  );
  return spawn('/usr/bin/docker-registry', ['serve', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
}

async function waitForV2(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`registry exited with ${child.exitCode} while starting`);
    const answered = await fetch(`${url}/v2/`).then(
      (response) => response.ok,
      () => false,
    );
    if (answered) return;
    await sleep(50);
  }
  throw new Error(`no answer from GET ${url}/v2/ within ${READY_TIMEOUT_MS} ms`);
}

/** SIGTERM, then SIGKILL after a grace period; children of ours stop with it. */
async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.stdin?.end();
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** Direct children (Node spawns from its main thread, so that task's list has them all). */
async function childPids(parent: number): Promise<number[]> {
  const list = await readFile(`/proc/${parent}/task/${parent}/children`, 'utf8');
  return list.split(' ').filter(Boolean).map(Number);
}

async function commandName(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
}

/** Resets the kernel's peak-RSS mark (VmHWM) to the current RSS; false if not allowed. */
export async function resetPeakRss(pid: number): Promise<boolean> {
  return writeFile(`/proc/${pid}/clear_refs`, '5').then(
    () => true,
    () => false,
  );
}

export async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]);
  return kib / 1024;
}

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ, 100 on Linux). */
let ticksPerSecond: number | undefined;

/**
 * CPU seconds (user + system) the processes have used so far, all together: for ours the
 * registry (with s3rver in it) and DynamoDB Local's JVM, for the reference its one process. Unlike
 * wall-clock time, it moves little when other work loads the machine.
 */
export async function cpuSeconds(processes: Record<string, number>): Promise<number> {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100;
  let ticks = 0;
  for (const pid of Object.values(processes)) {
    // After the command name (in parentheses, and it may hold spaces): utime and stime are the 12th and 13th fields.
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / ticksPerSecond;
}
