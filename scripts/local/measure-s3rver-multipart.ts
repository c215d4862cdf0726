/**
 * Measures whether the embedded s3rver keeps memory bounded for a large multipart upload:
 * uploads 1 GiB as 64 parts of 16 MiB (generated on the fly, never held whole), completes it,
 * reads it back, and reports start-up time plus the peak RSS growth of this process per phase.
 *
 *   npx tsx scripts/local/measure-s3rver-multipart.ts [partCount] [partMiB]
 *
 * s3rver runs in this process, so its memory shows up in our RSS. Peaks come from VmHWM in
 * /proc/self/status (reset per phase through /proc/self/clear_refs), so short spikes between
 * samples are not missed; on systems without procfs a 10 ms RSS sampler is used instead.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { ensureRegistryResources, startStandIns } from './stand-ins.js';
import { LOCAL_CREDENTIALS } from './local-credentials.js';

const MiB = 1024 * 1024;
const CHUNK_BYTES = MiB;
const BUCKET = 'measure-bucket';
const KEY = 'blobs/large';

const partCount = Number(process.argv[2] ?? 64);
const partBytes = Number(process.argv[3] ?? 16) * MiB;

interface PhaseResult {
  phase: string;
  seconds: number;
  peakRssGrowthMiB: number;
}

/** Peak RSS of a phase, relative to the RSS when the phase began. */
class PeakRss {
  private readonly procfs = canResetHighWaterMark();
  private sampledPeak = 0;
  private readonly sampler = this.procfs
    ? undefined
    : setInterval(() => (this.sampledPeak = Math.max(this.sampledPeak, process.memoryUsage.rss())), 10);

  start(): number {
    if (this.procfs) writeFileSync('/proc/self/clear_refs', '5');
    this.sampledPeak = 0;
    return process.memoryUsage.rss();
  }

  peak(): number {
    return this.procfs ? readVmHwmBytes() : Math.max(this.sampledPeak, process.memoryUsage.rss());
  }

  dispose(): void {
    clearInterval(this.sampler);
  }
}

function canResetHighWaterMark(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return readVmHwmBytes() > 0;
  } catch {
    return false;
  }
}

function readVmHwmBytes(): number {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return match ? Number(match[1]) * 1024 : 0;
}

async function measure<T>(rss: PeakRss, results: PhaseResult[], phase: string, run: () => Promise<T>): Promise<T> {
  const startRss = rss.start();
  const startTime = performance.now();
  const value = await run();
  results.push({
    phase,
    seconds: (performance.now() - startTime) / 1000,
    peakRssGrowthMiB: (rss.peak() - startRss) / MiB,
  });
  return value;
}

/** A part's bytes, produced chunk by chunk and fed into the whole object's running hash. */
function generatedPart(objectHash: Hash): Readable {
  let remaining = partBytes;
  return new Readable({
    read() {
      if (remaining === 0) return void this.push(null);
      const chunk = randomBytes(Math.min(CHUNK_BYTES, remaining));
      remaining -= chunk.length;
      objectHash.update(chunk);
      this.push(chunk);
    },
  });
}

async function uploadParts(s3: S3Client, uploadId: string, objectHash: Hash): Promise<CompletedPart[]> {
  const parts: CompletedPart[] = [];
  for (let partNumber = 1; partNumber <= partCount; partNumber++) {
    const { ETag } = await s3.send(
      new UploadPartCommand({
        Bucket: BUCKET,
        Key: KEY,
        UploadId: uploadId,
        PartNumber: partNumber,
        ContentLength: partBytes,
        Body: generatedPart(objectHash),
      }),
    );
    parts.push({ PartNumber: partNumber, ETag });
  }
  return parts;
}

async function readBack(s3: S3Client): Promise<{ bytes: number; sha256: string }> {
  const { Body } = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: KEY }));
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of Body as Readable) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { bytes, sha256: hash.digest('hex') };
}

async function main(): Promise<void> {
  const rss = new PeakRss();
  const results: PhaseResult[] = [];
  const dataDir = await mkdtemp(join(tmpdir(), 'measure-s3rver-'));
  const standIns = await measure(rss, results, 'startStandIns', () => startStandIns({ dataDir }));
  const s3 = new S3Client({
    region: 'us-east-1',
    endpoint: standIns.s3Endpoint,
    credentials: LOCAL_CREDENTIALS,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  try {
    await measure(rss, results, 'ensureRegistryResources', () =>
      ensureRegistryResources({
        region: 'us-east-1',
        tableName: 'measure-table',
        bucketName: BUCKET,
        dynamoEndpoint: standIns.dynamoEndpoint,
        s3Endpoint: standIns.s3Endpoint,
      }),
    );
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: KEY }));
    const objectHash = createHash('sha256');
    const parts = await measure(rss, results, `UploadPart x${partCount}`, () => uploadParts(s3, UploadId!, objectHash));
    await measure(rss, results, 'CompleteMultipartUpload', () =>
      s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: BUCKET,
          Key: KEY,
          UploadId,
          MultipartUpload: { Parts: parts },
        }),
      ),
    );
    const readResult = await measure(rss, results, 'GetObject (streamed)', () => readBack(s3));
    const expectedBytes = partCount * partBytes;
    const intact = readResult.bytes === expectedBytes && readResult.sha256 === objectHash.digest('hex');
    console.log(`object: ${expectedBytes / MiB} MiB in ${partCount} parts; read back intact: ${intact}`);
    console.table(
      results.map(({ phase, seconds, peakRssGrowthMiB }) => ({
        phase,
        seconds: seconds.toFixed(2),
        'peak RSS growth (MiB)': peakRssGrowthMiB.toFixed(1),
      })),
    );
    if (!intact) process.exitCode = 1;
  } finally {
    s3.destroy();
    rss.dispose();
    await standIns.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
