/**
 * `npm run bench`: our registry (run locally on its stand-ins) against the reference registry
 * (CNCF distribution, Debian's docker-registry), same machine, same image, same clients.
 * Settings: BENCH_LAYER_MB="1,10,50,100" (layer sizes, 1 MB = 10^6 bytes), BENCH_RUNS=3,
 * BENCH_REQUESTS=200 (manifest HEADs and GETs each), BENCH_WARM_UP_REQUESTS=2000 (untimed, before them).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { taggedDescriptor, writeImage, type WrittenImage } from '../test/support/oci-image.js';
import { cleanUp, cleanUpOnSignals, defer } from './bench/cleanup.js';
import { median, percentile, pullSeconds, pushSeconds, requestLatenciesMs, warmUpManifestRequests } from './bench/measure.js';
import { cpuSeconds, peakRssMiB, resetPeakRss, startRegistry, type BenchRegistry, type RegistryKind } from './bench/registries.js';
import { machineDescription, markdownTable, textTable, type Row } from './bench/report.js';

const LAYOUT_TAG = 'bench';
const REPOSITORY = 'bench/app';
const KINDS: RegistryKind[] = ['ours', 'reference'];

interface Settings {
  layerMb: number[];
  runs: number;
  requests: number;
  warmUpRequests: number;
}

interface Workload {
  settings: Settings;
  root: string;
  layoutDir: string;
  image: WrittenImage;
  /** A small image with other blobs, pushed and pulled untimed to warm each fresh registry up. */
  warmUpLayoutDir: string;
  totalBytes: number;
  loadAtStart: number[];
}

interface Measurements {
  startupSeconds: number[];
  pushSeconds: number[];
  /** CPU seconds of all the registry's processes in each push (theirs, not skopeo's). */
  pushCpuSeconds: number[];
  pullSeconds: number[];
  headMs: number[];
  getMs: number[];
  /** CPU milliseconds per request of all the registry's processes, over the timed HEADs and GETs. */
  headCpuMs?: number;
  getCpuMs?: number;
  /** Highest VmHWM seen over the pushes, by process label (`registry`, `java`, ...). */
  peakRssMiB: Record<string, number>;
  peakRssPerPush: boolean;
}

function readSettings(): Settings {
  const layerMb = (process.env.BENCH_LAYER_MB ?? '1,10,50,100').split(',').map(Number);
  const runs = Number(process.env.BENCH_RUNS ?? 3);
  const requests = Number(process.env.BENCH_REQUESTS ?? 200);
  const warmUpRequests = Number(process.env.BENCH_WARM_UP_REQUESTS ?? 2000);
  if (layerMb.some((mb) => !(mb > 0))) throw new Error('BENCH_LAYER_MB must list positive sizes, e.g. "1,10,50,100"');
  if (!(Number.isInteger(runs) && runs >= 1)) throw new Error('BENCH_RUNS must be a positive integer');
  if (!(Number.isInteger(requests) && requests >= 1)) throw new Error('BENCH_REQUESTS must be a positive integer');
  if (!(Number.isInteger(warmUpRequests) && warmUpRequests >= 0)) throw new Error('BENCH_WARM_UP_REQUESTS must be a non-negative integer');
  return { layerMb, runs, requests, warmUpRequests };
}

async function prepareWorkload(settings: Settings): Promise<Workload> {
  const root = await mkdtemp(join(tmpdir(), 'registry-bench-'));
  defer(() => rm(root, { recursive: true, force: true }));
  const layoutDir = join(root, 'image');
  const layers = settings.layerMb.map((mb) => ({ sizeBytes: Math.round(mb * 1e6) }));
  const image = await writeImage(layoutDir, { tag: LAYOUT_TAG, seed: 'bench', layers });
  const warmUpLayoutDir = join(root, 'warm-up-image');
  await writeImage(warmUpLayoutDir, { tag: LAYOUT_TAG, seed: 'warm-up', layers: [{ sizeBytes: 512_000 }, { sizeBytes: 64_000 }] });
  const manifest = JSON.parse(image.manifest.toString()) as { config: { size: number }; layers: Array<{ size: number }> };
  const totalBytes = image.manifestSize + manifest.config.size + manifest.layers.reduce((sum, layer) => sum + layer.size, 0);
  return { settings, root, layoutDir, image, warmUpLayoutDir, totalBytes, loadAtStart: loadavg() };
}

/**
 * One run against a brand-new registry (empty data dir, a port not used before), so every
 * push uploads every blob: no cross-repository mount, dedup or client-cache shortcut.
 */
async function measureRun(kind: RegistryKind, run: number, workload: Workload, into: Measurements): Promise<void> {
  const dataDir = join(workload.root, `${kind}-run${run}`);
  await mkdir(dataDir);
  const removeDataDir = defer(() => rm(dataDir, { recursive: true, force: true }));
  const registry = await startRegistry(kind, dataDir);
  const stopRegistry = defer(() => registry.stop());
  try {
    into.startupSeconds.push(registry.startupSeconds);
    await warmUp(registry, workload, dataDir);
    const reference = `${registry.host}/${REPOSITORY}:run${run}`;
    const peakRssReset = await resetPeakRssOf(registry);
    into.peakRssPerPush &&= peakRssReset;
    const cpuBeforePush = await cpuSeconds(registry.processes);
    into.pushSeconds.push(await pushSeconds(workload.layoutDir, LAYOUT_TAG, reference));
    into.pushCpuSeconds.push((await cpuSeconds(registry.processes)) - cpuBeforePush);
    await recordPeakRss(registry, into.peakRssMiB);
    const pulledDir = join(dataDir, 'pulled');
    into.pullSeconds.push(await pullSeconds(reference, pulledDir, 'x'));
    await checkPulledManifest(pulledDir, workload.image);
    if (run === workload.settings.runs) {
      const manifestUrl = `${registry.url}/v2/${REPOSITORY}/manifests/run${run}`;
      await warmUpManifestRequests(manifestUrl, workload.settings.warmUpRequests);
      [into.headMs, into.headCpuMs] = await timedRequests(registry, manifestUrl, 'HEAD', workload.settings.requests);
      [into.getMs, into.getCpuMs] = await timedRequests(registry, manifestUrl, 'GET', workload.settings.requests);
    }
    console.error(
      `  ${kind} run ${run}: push ${into.pushSeconds.at(-1)!.toFixed(2)} s (${into.pushCpuSeconds.at(-1)!.toFixed(2)} CPU-s), pull ${into.pullSeconds.at(-1)!.toFixed(2)} s`,
    );
  } finally {
    await stopRegistry();
    await removeDataDir();
  }
}

/** Latencies of `count` requests, and the registry's CPU milliseconds per request over them. */
async function timedRequests(registry: BenchRegistry, url: string, method: 'HEAD' | 'GET', count: number): Promise<[number[], number]> {
  const before = await cpuSeconds(registry.processes);
  const latencies = await requestLatenciesMs(url, method, count, 0);
  return [latencies, (((await cpuSeconds(registry.processes)) - before) * 1000) / count];
}

/** Untimed push and pull of an unrelated image: JIT, caches and connections warm, no shared blobs. */
async function warmUp(registry: BenchRegistry, workload: Workload, dataDir: string): Promise<void> {
  const reference = `${registry.host}/warm-up/app:x`;
  await pushSeconds(workload.warmUpLayoutDir, LAYOUT_TAG, reference);
  await pullSeconds(reference, join(dataDir, 'warm-up-pulled'), 'x');
}

async function resetPeakRssOf(registry: BenchRegistry): Promise<boolean> {
  const results = await Promise.all(Object.values(registry.processes).map(resetPeakRss));
  return results.every(Boolean);
}

async function recordPeakRss(registry: BenchRegistry, into: Record<string, number>): Promise<void> {
  for (const [label, pid] of Object.entries(registry.processes)) {
    into[label] = Math.max(into[label] ?? 0, await peakRssMiB(pid));
  }
}

async function checkPulledManifest(dir: string, image: WrittenImage): Promise<void> {
  const pulled = await taggedDescriptor(dir, 'x');
  if (pulled.digest !== image.manifestDigest) {
    throw new Error(`pulled manifest ${pulled.digest} is not the pushed ${image.manifestDigest}`);
  }
}

function tableRows(results: Record<RegistryKind, Measurements>, totalBytes: number): Row[] {
  const row = (metric: string, digits: number, pick: (m: Measurements) => number | undefined): Row => ({
    metric,
    digits,
    ours: pick(results.ours),
    reference: pick(results.reference),
  });
  const megabytes = totalBytes / 1e6;
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  return [
    row('push, median (s)', 2, (m) => median(m.pushSeconds)),
    row('push throughput (MB/s)', 1, (m) => megabytes / median(m.pushSeconds)),
    row('push, registry CPU, median (s)', 2, (m) => median(m.pushCpuSeconds)),
    row('pull, median (s)', 2, (m) => median(m.pullSeconds)),
    row('pull throughput (MB/s)', 1, (m) => megabytes / median(m.pullSeconds)),
    row('manifest HEAD by tag, median (ms)', 2, (m) => median(m.headMs)),
    row('manifest HEAD by tag, p95 (ms)', 2, (m) => percentile(m.headMs, 0.95)),
    row('manifest HEAD by tag, registry CPU per request (ms)', 2, (m) => m.headCpuMs),
    row('manifest GET by tag, median (ms)', 2, (m) => median(m.getMs)),
    row('manifest GET by tag, p95 (ms)', 2, (m) => percentile(m.getMs, 0.95)),
    row('manifest GET by tag, registry CPU per request (ms)', 2, (m) => m.getCpuMs),
    row('start-up until GET /v2/ answers, median (s)', 2, (m) => median(m.startupSeconds)),
    row('peak RSS in push, registry process (MiB)', 0, (m) => m.peakRssMiB.registry),
    row('peak RSS in push, DynamoDB Local JVM (MiB)', 0, (m) => m.peakRssMiB.java),
    row('peak RSS in push, all processes (MiB)', 0, (m) => sum(Object.values(m.peakRssMiB))),
  ];
}

function printReport(workload: Workload, results: Record<RegistryKind, Measurements>): void {
  const { settings } = workload;
  const rows = tableRows(results, workload.totalBytes);
  const perPush = results.ours.peakRssPerPush && results.reference.peakRssPerPush;
  const notes = [
    `Workload: one OCI image, ${settings.layerMb.length} gzip layers of ${settings.layerMb.join(', ')} MB of incompressible data, ` +
      `${(workload.totalBytes / 1e6).toFixed(1)} MB in all (1 MB = 10^6 bytes); ${settings.runs} runs per registry, alternating which goes first; skopeo copy to push and pull.`,
    'Each run starts a fresh registry (empty data dir, a port not used before), so every push uploads every blob: no cross-repository mount or dedup shortcut. ' +
      'Before timing, each fresh registry gets an untimed push and pull of a small unrelated image (warm-up: JIT, connections). Start-up is not part of push time.',
    `Manifest latency: ${settings.requests} sequential HEADs, then ${settings.requests} GETs, by tag, on one keep-alive connection after ${settings.warmUpRequests} untimed warm-up requests (HEAD and GET in turn), against the last run's registry.`,
    "Registry CPU: user + system time from /proc of all the registry's processes (ours: the Node process, s3rver included, and DynamoDB Local's JVM; reference: its one process), not of the clients; it moves far less than wall-clock time when other work loads the machine.",
    `Peak RSS: VmHWM from /proc, ${perPush ? 'reset (clear_refs) just before each push' : 'since process start (could not reset)'}; highest over the runs.`,
    'Ours runs locally: Node HTTP server with s3rver in-process and DynamoDB Local (Java) as stand-ins for S3 and DynamoDB, which production does not have. ' +
      'Reference: distribution 2.8 with filesystem storage. Request logging is off in both.',
    'Ratio ours/reference: below 1 is better for s, ms and MiB; above 1 is better for MB/s.',
  ];
  const machine = machineDescription(workload.loadAtStart);
  console.log(['', ...machine, '', textTable(rows), '', ...notes.map((note) => `- ${note}`)].join('\n'));
  console.log(['', 'Markdown:', '', ...machine.map((line) => `${line}  `), '', markdownTable(rows), '', ...notes.map((n) => `- ${n}`)].join('\n'));
}

function emptyMeasurements(): Measurements {
  return { startupSeconds: [], pushSeconds: [], pushCpuSeconds: [], pullSeconds: [], headMs: [], getMs: [], peakRssMiB: {}, peakRssPerPush: true };
}

async function main(): Promise<void> {
  cleanUpOnSignals();
  const settings = readSettings();
  console.error(`Generating the image (layers of ${settings.layerMb.join(', ')} MB)…`);
  const workload = await prepareWorkload(settings);
  const results: Record<RegistryKind, Measurements> = { ours: emptyMeasurements(), reference: emptyMeasurements() };
  for (let run = 1; run <= settings.runs; run++) {
    for (const kind of run % 2 ? KINDS : [...KINDS].reverse()) {
      await measureRun(kind, run, workload, results[kind]);
    }
  }
  printReport(workload, results);
}

try {
  await main();
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
