/**
 * `npx tsx scripts/bench/stand-in-upload-cpu.ts [runs]`: the CPU time of `npm run bench`'s push
 * on the S3 side, without HTTP from skopeo, DynamoDB or the machine's load in the figure. The
 * image's four layers (1, 10, 50, 100 MB, as BENCH_LAYER_MB) go, each as one whole body, through
 * the registry's real UploadWriter, BlobObjectStore and S3 client into the local S3 stand-in
 * (s3rver, in this process, as under `npm start`): 16 MiB parts, CompleteMultipartUpload. Prints
 * the CPU seconds (user + system) of this process per run: the registry's S3 client plus the
 * stand-in, the share of the bench's push that is theirs.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { BlobObjectStore } from '../../registry/storage/blob-object-store.js';
import { UploadWriter } from '../../registry/services/uploads/upload-writer.js';
import type { UploadSession } from '../../registry/storage/upload-session-store.js';
import { LOCAL_CREDENTIALS } from '../local/local-credentials.js';
import { ensureRegistryResources, startStandIns } from '../local/stand-ins.js';

const MiB = 1024 * 1024;
const runs = Number(process.argv[2] ?? 3);
const layerMb = (process.env.BENCH_LAYER_MB ?? '1,10,50,100').split(',').map(Number);
const chunk = randomBytes(256 * 1024);

function* body(bytes: number): Generator<Uint8Array> {
  for (let sent = 0; sent < bytes; sent += chunk.byteLength) yield chunk.subarray(0, Math.min(chunk.byteLength, bytes - sent));
}

function session(index: number): UploadSession {
  const id = `11111111-2222-4333-8444-${String(index).padStart(12, '0')}`;
  return { id, repository: 'bench/cpu', offset: 0, partCount: 0, tailSize: 0, version: 1, createdAt: 0, expiresAt: 0 };
}

const dataDir = await mkdtemp(join(tmpdir(), 'stand-in-upload-cpu-'));
const standIns = await startStandIns({ dataDir });
const region = 'us-east-1';
const bucketName = 'bench-blobs';
await ensureRegistryResources({ region, tableName: 'bench', bucketName, dynamoEndpoint: standIns.dynamoEndpoint, s3Endpoint: standIns.s3Endpoint });
const s3 = new S3Client({
  region,
  endpoint: standIns.s3Endpoint,
  credentials: LOCAL_CREDENTIALS,
  forcePathStyle: true,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});
const writer = new UploadWriter(new BlobObjectStore(s3, bucketName), 16 * MiB);
try {
  let uploads = 0;
  // One untimed run first: JIT and connections, as the bench's warm-up push.
  for (let run = 0; run <= runs; run++) {
    const start = process.cpuUsage();
    const wall = performance.now();
    for (const mb of layerMb) await writer.receive(session(uploads++), body(mb * 1e6), { chunked: false });
    const used = process.cpuUsage(start);
    if (run > 0)
      console.log(`run ${run}: ${((used.user + used.system) / 1e6).toFixed(2)} CPU-s, ${((performance.now() - wall) / 1000).toFixed(2)} s wall`);
  }
} finally {
  s3.destroy();
  await standIns.stop();
  await rm(dataDir, { recursive: true, force: true });
}
