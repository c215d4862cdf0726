/**
 * `npx tsx scripts/bench/upload-cpu.ts [MiB]`: registry CPU per GiB on the upload path (issue 12),
 * the before and after of hashing. 256 MiB (by default) go through the real UploadWriter and
 * the real S3 client, as one PATCH would, into an S3 that lives in this process (the request
 * handler drains the body and answers), so that what is measured is the registry's own work:
 * hashing, cutting parts, SDK serialisation and signing, not the network or the stand-in.
 * - before: the resumable hash-wasm state, and a signed payload (the SDK hashes each part again);
 * - after: native SHA-256 for a whole body, and UNSIGNED-PAYLOAD over HTTPS.
 * Also prints the chunked path as it is now (hash-wasm, unsigned). Lambda-sized: the upload
 * gateway runs on 0.25 vCPU, so its ceiling is a quarter of the one-core throughput.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { BlobObjectStore } from '../../registry/storage/blob-object-store.js';
import { UploadWriter } from '../../registry/services/uploads/upload-writer.js';
import type { UploadSession } from '../../registry/storage/upload-session-store.js';

const MiB = 1024 * 1024;
const total = Number(process.argv[2] ?? 256) * MiB;
const chunk = randomBytes(64 * 1024);

function inProcessS3(endpoint: string): S3Client {
  return new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    requestHandler: {
      handle: async (request: { body?: unknown; query?: Record<string, string> }) => {
        if (request.body instanceof Readable) for await (const _ of request.body);
        // CreateMultipartUpload and CompleteMultipartUpload (a whole body is completed in its PATCH) need an answer body.
        const query = request.query ?? {};
        const xml =
          'uploads' in query
            ? '<InitiateMultipartUploadResult><UploadId>u1</UploadId></InitiateMultipartUploadResult>'
            : 'uploadId' in query && !('partNumber' in query)
              ? '<CompleteMultipartUploadResult><ETag>"etag"</ETag></CompleteMultipartUploadResult>'
              : '';
        return { response: { statusCode: 200, headers: { etag: '"etag"' }, body: Readable.from(xml ? [Buffer.from(xml)] : []) } };
      },
    } as never,
  });
}

function session(): UploadSession {
  return {
    id: '11111111-2222-4333-8444-555555555555',
    repository: 'bench/cpu',
    offset: 0,
    partCount: 0,
    tailSize: 0,
    version: 1,
    createdAt: 0,
    expiresAt: 0,
  };
}

function* body(): Generator<Uint8Array> {
  for (let sent = 0; sent < total; sent += chunk.byteLength) yield chunk;
}

async function measure(label: string, endpoint: string, chunked: boolean): Promise<void> {
  const writer = new UploadWriter(new BlobObjectStore(inProcessS3(endpoint), 'bucket'), 16 * MiB);
  const start = process.cpuUsage();
  const wall = performance.now();
  await writer.receive(session(), body(), { chunked });
  const used = process.cpuUsage(start);
  const cpuSeconds = (used.user + used.system) / 1e6;
  const perGiB = cpuSeconds / (total / (1024 * MiB));
  const mbPerCore = total / 1e6 / cpuSeconds;
  console.log(
    `| ${label} | ${perGiB.toFixed(2)} | ${mbPerCore.toFixed(0)} | ${(mbPerCore * 0.25).toFixed(0)} | ${((performance.now() - wall) / 1000).toFixed(1)} |`,
  );
}

console.log(`${total / MiB} MiB in one body, 16 MiB parts`);
console.log('| path | CPU s per GiB | MB/s per core | MB/s at 0.25 vCPU | wall s |');
console.log('|---|---|---|---|---|');
// Plain HTTP to a host that is not loopback: the SDK signs (hashes) the payload, as it did before.
await measure('before: hash-wasm + signed payload', 'http://s3.internal.example:9', true);
await measure('after: native SHA-256 + UNSIGNED-PAYLOAD (whole body)', 'https://s3.example.com', false);
await measure('chunked (Content-Range): hash-wasm + UNSIGNED-PAYLOAD', 'https://s3.example.com', true);
