/**
 * What a real client does with the 429 a first pull gets while a streamed blob is still being
 * copied (docs/pull-through.md, "Blobs"): skopeo (containers/image, as podman and buildah) waits
 * the Retry-After and asks again by itself, with no --retry-times, and ends up with the right bytes.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Logger } from '../../registry/support/logger.js';
import { UpstreamStore } from '../../registry/storage/upstream-store.js';
import { createSkopeo } from '../support/clients.js';
import { startCountingProxy, type CountingProxy } from '../support/counting-proxy.js';
import { blobDifferences, imageBlobs } from '../support/layout-compare.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';
import { startUpstreamRegistry, type UpstreamRegistry } from '../support/upstream-registry.js';
import { useLocalStack } from '../integration/local-stack.js';

const MIB = 1024 * 1024;
const answers: { operation?: string; status?: number }[] = [];
const logger: Logger = {
  info: (message, fields) => {
    if (message === 'request') answers.push(fields as { operation?: string; status?: number });
  },
  warn: () => undefined,
  error: () => undefined,
};
// A wait far shorter than the copy: the first GET of the layer is answered 429.
const stack = useLocalStack('pull-through-blob-retry', { logger, overrides: { blobCopy: { waitMs: 300 } } });
let upstream: UpstreamRegistry;
let proxy: CountingProxy;
let image: WrittenImage;

beforeAll(async () => {
  upstream = await startUpstreamRegistry({ dataDir: join(stack.dataDir, 'upstream') });
  proxy = await startCountingProxy({ target: upstream.url });
  image = await writeImage(join(stack.dataDir, 'layout'), { tag: 'v1', layers: [{ sizeBytes: 40 * MIB, compression: 'none' }], seed: 'blob-retry' });
  await upstream.push(join(stack.dataDir, 'layout'), 'v1', 'library/big');
  const now = new Date().toISOString();
  await new UpstreamStore(stack.clients.dynamo, stack.registry.config.tableName).put({
    name: 'hub',
    url: proxy.url,
    prefix: 'hub',
    hosts: [],
    dockerHub: false,
    tagTtlSeconds: 300,
    credentials: 'none',
    credentialsVersion: 0,
    createdAt: now,
    updatedAt: now,
  });
});

afterAll(async () => {
  await proxy?.stop();
  await upstream?.stop();
});

it('skopeo retries the 429 of a blob being copied by itself, and pulls the image byte for byte', async () => {
  proxy.throttle(8 * MIB);
  const skopeo = await createSkopeo(join(stack.dataDir, 'skopeo'));
  const pulled = join(stack.dataDir, 'pulled');
  await skopeo.copy(`docker://${new URL(stack.registry.url).host}/hub/library/big:v1`, `oci:${pulled}:v1`, ['--preserve-digests']);
  expect(await blobDifferences(join(stack.dataDir, 'layout'), pulled, imageBlobs(image))).toEqual([]);
  const blobAnswers = answers.filter((answer) => answer.operation === 'getBlob').map((answer) => answer.status);
  expect(blobAnswers).toContain(429);
  expect(blobAnswers.at(-1)).toBe(307);
  // The copy made one upstream fetch and one resumption with Range, whatever the retries.
  const fetches = proxy.requests.filter((request) => request.method === 'GET' && request.path === `/v2/library/big/blobs/${image.layerDigests[0]}`);
  expect(fetches.length).toBeLessThanOrEqual(2);
});
