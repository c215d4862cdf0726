/**
 * Garbage collection at grace 0, run over and over, while eight clients push for a minute:
 * every manifest PUT that answered 201 must pull back complete afterwards. A push may lose
 * (MANIFEST_BLOB_UNKNOWN when GC took a blob first); an image whose push succeeded never does.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { collectGarbage, type GcReport } from '../../registry/services/gc/index.js';
import { imageManifest, sha256 } from '../support/registry-http.js';
import { useLocalStack } from './local-stack.js';

const PUSHERS = 8;
const RACE_MS = 60_000;
const GC_PAUSE_MS = 1000;
const SHARED_LAYERS = Array.from({ length: 4 }, (_, i) => `shared race layer ${i} ${'s'.repeat(1000 * (i + 1))}`);

const stack = useLocalStack('gc-race', { quiet: !process.env.RACE_DEBUG });

interface Pushed {
  repo: string;
  tag: string;
  manifest: string;
  blobs: { digest: string; bytes: Buffer }[];
}

/** Monolithic uploads; at grace 0 GC may take a blob as it is stored, and the client uploads it again. */
async function pushBlobs(repo: string, blobs: readonly { digest: string; bytes: Buffer }[], stats: { retries: number }): Promise<void> {
  for (const blob of blobs) {
    for (let attempt = 1; ; attempt++) {
      const response = await stack.http.fetch(`/v2/${repo}/blobs/uploads/?digest=${blob.digest}`, { method: 'POST', body: blob.bytes });
      if (response.status === 201) break;
      const answer = `${response.status} ${await response.text()}`;
      expect(answer).toContain('BLOB_UPLOAD_INVALID');
      expect(attempt).toBeLessThan(10);
      stats.retries++;
    }
  }
}

/**
 * Pushes an image; when GC took a blob before the manifest came (MANIFEST_BLOB_UNKNOWN, the
 * only acceptable refusal), pushes the blobs again and retries, as a client would.
 */
async function pushImage(worker: number, round: number, stats: { retries: number }): Promise<Pushed | undefined> {
  const repo = `race/p${worker % 4}`;
  const config = Buffer.from(`{"architecture":"amd64","os":"linux","worker":${worker},"round":${round}}`);
  const shared = Buffer.from(SHARED_LAYERS[(worker + round) % SHARED_LAYERS.length]!);
  const own = randomBytes(2048);
  const blobs = [config, shared, own].map((bytes) => ({ digest: sha256(bytes), bytes }));
  const manifest = JSON.stringify({
    ...JSON.parse(imageManifest(blobs[0]!.digest, blobs[1]!.digest, {}, config.length, shared.length)),
    layers: [blobs[1]!, blobs[2]!].map((blob) => ({
      mediaType: 'application/vnd.oci.image.layer.v1.tar',
      digest: blob.digest,
      size: blob.bytes.length,
    })),
  });
  const tag = `w${worker}-r${round}`;
  for (let attempt = 1; attempt <= 10; attempt++) {
    await pushBlobs(repo, blobs, stats);
    const response = await stack.http.putManifest(repo, tag, manifest);
    if (response.status === 201) return { repo, tag, manifest, blobs };
    const body = (await response.json()) as { errors: { code: string }[] };
    expect(`${response.status} ${body.errors[0]?.code}`).toBe('400 MANIFEST_BLOB_UNKNOWN');
    stats.retries++;
  }
  return undefined;
}

it('GC at grace 0 running back to back never breaks an image whose push answered 201', async () => {
  const end = Date.now() + RACE_MS;
  const pushed: Pushed[] = [];
  const stats = { retries: 0, gaveUp: 0 };
  const reports: GcReport[] = [];
  const gcLoop = (async () => {
    while (Date.now() < end) {
      reports.push(
        await collectGarbage(
          {
            dynamo: stack.clients.dynamo,
            s3: stack.clients.s3,
            tableName: stack.registry.config.tableName,
            bucketName: stack.registry.config.bucketName,
          },
          { graceSeconds: 0, scanSegments: 2, concurrency: 8 },
        ),
      );
      // About the pause between two `npm run gc -- --grace 0` in a shell loop.
      await sleep(GC_PAUSE_MS);
    }
  })();
  await Promise.all(
    Array.from({ length: PUSHERS }, async (_, worker) => {
      for (let round = 0; Date.now() < end; round++) {
        const result = await pushImage(worker, round, stats);
        if (result) pushed.push(result);
        else stats.gaveUp++;
      }
    }),
  );
  await gcLoop;

  const broken: string[] = [];
  for (const image of pushed) {
    const manifest = await stack.http.fetch(`/v2/${image.repo}/manifests/${image.tag}`);
    if (manifest.status !== 200 || (await manifest.text()) !== image.manifest) {
      broken.push(`${image.repo}:${image.tag} manifest ${manifest.status}`);
      continue;
    }
    for (const blob of image.blobs) {
      const redirect = await stack.http.fetch(`/v2/${image.repo}/blobs/${blob.digest}`);
      const bytes = redirect.status === 307 ? Buffer.from(await (await fetch(redirect.headers.get('location')!)).arrayBuffer()) : undefined;
      if (!bytes?.equals(blob.bytes)) broken.push(`${image.repo}:${image.tag} blob ${blob.digest} ${redirect.status}`);
    }
  }
  const deleted = reports.reduce((sum, report) => sum + report.blobsDeleted, 0);
  console.log(JSON.stringify({ pushed: pushed.length, ...stats, gcRuns: reports.length, blobsDeleted: deleted, broken: broken.length }));
  expect(broken).toEqual([]);
  // The race was real: GC ran many times and deleted blobs while images were being pushed
  // (counts well below what a quiet machine reaches, ~300 images and ~30 runs, so that a loaded
  // one still passes).
  expect(pushed.length).toBeGreaterThan(30);
  expect(reports.length).toBeGreaterThan(5);
  expect(deleted).toBeGreaterThan(0);
});
