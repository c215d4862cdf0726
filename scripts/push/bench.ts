/**
 * npm run push:bench -- [--layer-mib 1024] [--runs 3] [--concurrency 4] [--part-size 32] [--gzip]
 *
 * Times `npm run push` (direct to S3) against `skopeo copy` through the upload gateway, on the
 * same image, each against a fresh local registry set up as in AWS (Lambda handlers behind the
 * API Gateway emulator; the upload gateway on its own port; s3rver and DynamoDB Local). Also
 * times `npm run push` against the registry without any gateway, where skopeo cannot push a
 * layer over ~4 MiB at all. Prints a Markdown table for docs/direct-push.md.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { writeImage } from '../../test/support/oci-image.js';
import type { PushResult } from './push.js';

const MiB = 1024 * 1024;
const ROOT = join(import.meta.dirname, '..', '..');

type Case = 'skopeo, upload gateway' | 'push, direct (gateway stack)' | 'push, direct (no gateway)';

interface Sample {
  seconds: number;
  push?: PushResult;
}

const { values } = parseArgs({
  options: {
    'layer-mib': { type: 'string', default: '1024' },
    runs: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '4' },
    'part-size': { type: 'string', default: '32' },
    gzip: { type: 'boolean', default: false },
  },
});
const layerMiB = Number(values['layer-mib']);
const runs = Number(values.runs);

const children = new Set<ChildProcess>();
const workDir = await mkdtemp(join(tmpdir(), 'push-bench-'));
const cleanUp = async () => {
  for (const child of children) child.kill('SIGTERM');
  await rm(workDir, { recursive: true, force: true });
};
process.once('SIGINT', () => void cleanUp().finally(() => process.exit(130)));

try {
  const loadAtStart = loadavg();
  const source = join(workDir, 'image');
  const generated = Date.now();
  await writeImage(source, {
    tag: 'v1',
    seed: `push-bench/${layerMiB}`,
    layers: [{ sizeBytes: 64 * 1024 }, { sizeBytes: layerMiB * MiB, compression: values.gzip ? 'gzip' : 'none' }],
  });
  const imageBytes = await layoutBytes(source);
  console.error(`image: ${(imageBytes / MiB).toFixed(1)} MiB written in ${((Date.now() - generated) / 1000).toFixed(1)} s`);
  const policy = join(workDir, 'policy.json');
  await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));

  const samples = new Map<Case, Sample[]>();
  const cases: Case[] = ['skopeo, upload gateway', 'push, direct (gateway stack)', 'push, direct (no gateway)'];
  for (let run = 1; run <= runs; run++) {
    // A different case goes first in each run, so that none always follows the same one.
    const order = cases.map((_, index) => cases[(index + run - 1) % cases.length]!);
    for (const name of order) {
      const dataDir = join(workDir, `registry-${run}-${cases.indexOf(name)}`);
      const registry = await startRegistry(name === 'push, direct (no gateway)' ? 'api' : 'gateway', dataDir);
      try {
        const destination = `${new URL(registry.url).host}/bench/app:v1`;
        const sample =
          name === 'skopeo, upload gateway'
            ? await skopeoPush(policy, source, destination, join(workDir, `skopeo-${run}`))
            : await ourPush(source, destination);
        samples.set(name, [...(samples.get(name) ?? []), sample]);
        console.error(`run ${run}, ${name}: ${sample.seconds.toFixed(1)} s (${(imageBytes / 1e6 / sample.seconds).toFixed(1)} MB/s)`);
      } finally {
        await registry.stop();
        // Gigabytes per run: do not leave them for the next runs' disk writes to compete with.
        await rm(dataDir, { recursive: true, force: true });
      }
    }
  }

  const rows = cases.map((name) => {
    const list = samples.get(name)!;
    const seconds = median(list.map((sample) => sample.seconds));
    const pushes = list.map((sample) => sample.push).filter((push): push is PushResult => push !== undefined);
    const phases = pushes.length
      ? `parts ${median(pushes.map((push) => push.directSeconds.parts)).toFixed(1)} s (${(imageBytes / 1e6 / median(pushes.map((push) => push.directSeconds.parts))).toFixed(0)} MB/s), ` +
        `complete + verify ${median(pushes.map((push) => push.directSeconds.verification)).toFixed(1)} s in ${median(pushes.map((push) => push.verificationRequests))} requests, ` +
        `peak RSS ${median(pushes.map((push) => push.peakRssMiB))} MiB`
      : '';
    return `| ${name} | ${list.map((sample) => sample.seconds.toFixed(1)).join(', ')} | ${seconds.toFixed(1)} | ${(imageBytes / 1e6 / seconds).toFixed(1)} | ${phases} |`;
  });
  const cpu = cpus()[0]?.model ?? 'unknown';
  console.log(
    [
      `date: ${new Date().toISOString()}`,
      `machine: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, load ${loadAtStart.map((load) => load.toFixed(2)).join(' ')} at start, ${loadavg()
        .map((load) => load.toFixed(2))
        .join(' ')} at end`,
      `node ${process.version}, ${execFileSync('skopeo', ['--version'], { encoding: 'utf8' }).trim()}`,
      `image: ${(imageBytes / MiB).toFixed(1)} MiB (one ${layerMiB} MiB ${values.gzip ? 'gzip' : 'uncompressed'} layer, pseudo-random), ${runs} runs, --concurrency ${values.concurrency} --part-size ${values['part-size']}`,
      '',
      '| client and path | runs (s) | median (s) | MB/s | push phases (median) |',
      '| --- | --- | ---: | ---: | --- |',
      ...rows,
    ].join('\n'),
  );
} finally {
  await cleanUp();
}

async function startRegistry(mode: 'gateway' | 'api', dataDir: string): Promise<{ url: string; stop(): Promise<void> }> {
  await mkdir(dataDir, { recursive: true });
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'bench-registry.ts')], {
    env: { ...process.env, PUSH_BENCH_MODE: mode, PUSH_BENCH_DATA_DIR: dataDir, NODE_NO_WARNINGS: '1' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const url = await new Promise<string>((resolve, reject) => {
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const ready = /READY (\S+)/.exec(output);
      if (ready) resolve(ready[1]!);
    });
    child.once('exit', (code) => reject(new Error(`the registry exited with ${code}`)));
  });
  return {
    url,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.stdin!.end();
      await exited;
    },
  };
}

async function skopeoPush(policy: string, source: string, destination: string, stateDir: string): Promise<Sample> {
  // A fresh blob-info cache each time, so that skopeo tries no mount from an earlier run.
  await mkdir(stateDir, { recursive: true });
  const started = performance.now();
  await run('skopeo', ['--policy', policy, 'copy', '--dest-tls-verify=false', '--preserve-digests', `oci:${source}:v1`, `docker://${destination}`], {
    XDG_DATA_HOME: stateDir,
  });
  return { seconds: (performance.now() - started) / 1000 };
}

async function ourPush(source: string, destination: string): Promise<Sample> {
  const started = performance.now();
  const stdout = await run(process.execPath, [
    '--import',
    'tsx',
    join(ROOT, 'scripts', 'push.ts'),
    `${source}:v1`,
    destination,
    '--insecure-http',
    '--quiet',
    '--json',
    '--concurrency',
    values.concurrency!,
    '--part-size',
    values['part-size']!,
  ]);
  return { seconds: (performance.now() - started) / 1000, push: JSON.parse(stdout) as PushResult };
}

async function run(command: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const child = spawn(command, args, { env: { ...process.env, NODE_NO_WARNINGS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  children.delete(child);
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}:\n${stderr.slice(-4000)}`);
  return stdout;
}

async function layoutBytes(dir: string): Promise<number> {
  const { readdir, stat } = await import('node:fs/promises');
  let total = 0;
  for (const name of await readdir(join(dir, 'blobs', 'sha256'))) total += (await stat(join(dir, 'blobs', 'sha256', name))).size;
  return total;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
