/** What the bench times: skopeo pushes and pulls, and manifest request latency. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { track } from './cleanup.js';

const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** Seconds `command` took to exit 0; throws with its stderr otherwise. */
export async function timeCommand(command: string, args: string[]): Promise<number> {
  const started = performance.now();
  const child = track(spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}:\n${stderr.trim()}`);
  return (performance.now() - started) / 1000;
}

export function pushSeconds(layoutDir: string, layoutTag: string, destination: string): Promise<number> {
  return timeCommand('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layoutDir}:${layoutTag}`, `docker://${destination}`]);
}

export function pullSeconds(source: string, layoutDir: string, layoutTag: string): Promise<number> {
  return timeCommand('skopeo', ['copy', '--src-tls-verify=false', `docker://${source}`, `oci:${layoutDir}:${layoutTag}`]);
}

/**
 * Milliseconds for each of `count` sequential requests over one keep-alive connection,
 * each until the whole response is read, after `warmUp` requests that are not counted.
 */
export async function requestLatenciesMs(url: string, method: 'HEAD' | 'GET', count: number, warmUp = 10): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < warmUp; i++) await request(agent, url, method);
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      await request(agent, url, method);
      samples.push(performance.now() - started);
    }
    return samples;
  } finally {
    agent.destroy();
  }
}

/**
 * `count` untimed requests, HEAD and GET in turn, on one keep-alive connection: JIT compilers
 * (V8's, and DynamoDB Local's C1-only JVM) need about 1,500 before our CPU per request settles
 * (measured on 2026-12-02 in windows of 500: 4.6, 3.5, 2.9, then 2.0 ms in the registry process).
 * With 10, whichever method was timed first looked slower: HEAD, so HEAD seemed slower than GET
 * (with GET first, GET took 8.3 ms median, and 3.3 ms a thousand requests later).
 */
export async function warmUpManifestRequests(url: string, count: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < count; i++) await request(agent, url, i % 2 ? 'GET' : 'HEAD');
  } finally {
    agent.destroy();
  }
}

function request(agent: http.Agent, url: string, method: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers: { Accept: MANIFEST_ACCEPT } }, (response) => {
      response.on('end', () => (response.statusCode === 200 ? resolve() : reject(new Error(`${method} ${url}: HTTP ${response.statusCode}`))));
      response.on('error', reject);
      response.resume();
    });
    req.on('error', reject);
    req.end();
  });
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Nearest-rank percentile, `fraction` in (0, 1]. */
export function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(fraction * sorted.length) - 1)]!;
}
