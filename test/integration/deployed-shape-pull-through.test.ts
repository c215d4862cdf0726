/**
 * The pull-through copier in the local deployed shape (pulls through a prefix and ns= are in
 * pull-through-deployed-shape.test.ts): with the upstream redirecting blob GETs as Docker Hub
 * does, the bundled registry function hands the redirect on and invokes the bundled copier
 * function asynchronously through the emulated Lambda Invoke API (LAMBDA_ENDPOINT), which copies
 * the blob into S3 for later pulls.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Upstream } from '../../registry/model/pull-through/upstream.js';
import { createAwsClients } from '../../registry/storage/aws-clients.js';
import { BlobIndex } from '../../registry/storage/blob-index.js';
import { UpstreamStore } from '../../registry/storage/upstream-store.js';
import { LOCAL_CREDENTIALS } from '../../scripts/local/local-credentials.js';
import { createSkopeo } from '../support/clients.js';
import { startCountingProxy, type CountingProxy } from '../support/counting-proxy.js';
import { useDeployedShape } from '../support/deployed-shape.js';
import { blobDifferences, imageBlobs } from '../support/layout-compare.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';
import { startUpstreamRegistry, type UpstreamRegistry } from '../support/upstream-registry.js';

const MIB = 1024 * 1024;

describe('the pull-through copier in the local deployed shape', () => {
  const deployed = useDeployedShape('dspt');
  let upstream: UpstreamRegistry;
  let proxy: CountingProxy;
  const images: Record<string, WrittenImage> = {};

  beforeAll(async () => {
    upstream = await startUpstreamRegistry({ dataDir: join(deployed.workDir, 'upstream') });
    proxy = await startCountingProxy({ target: upstream.url });
    for (const name of ['cdn']) {
      const layout = join(deployed.workDir, 'layouts', name);
      images[name] = await writeImage(layout, { tag: 'v1', layers: [{ sizeBytes: 2 * MIB }], seed: `deployed-pull-through-${name}` });
      await upstream.push(layout, 'v1', `library/${name}`);
    }
    const clients = createAwsClients(deployed.shape.config, LOCAL_CREDENTIALS);
    const now = new Date().toISOString();
    const hub: Upstream = {
      name: 'hub',
      url: proxy.url,
      prefix: 'hub',
      hosts: ['docker.io'],
      dockerHub: true,
      tagTtlSeconds: 300,
      credentials: 'none',
      credentialsVersion: 0,
      createdAt: now,
      updatedAt: now,
    };
    await new UpstreamStore(clients.dynamo, deployed.shape.config.tableName).put(hub);
  });

  afterAll(async () => {
    await proxy?.stop();
    await upstream?.stop();
  });

  const pull = async (name: string) => {
    const skopeo = await createSkopeo(join(deployed.workDir, 'skopeo'));
    const pulled = join(deployed.workDir, `pulled-${name}`);
    await skopeo.copy(`docker://${deployed.host}/hub/library/${name}:v1`, `oci:${pulled}:v1`);
    return blobDifferences(join(deployed.workDir, 'layouts', name), pulled, imageBlobs(images[name] as WrittenImage));
  };

  it('with a redirecting upstream the client gets the redirect and the copier function stores the blob', async () => {
    proxy.redirectBlobs(true);
    try {
      expect(await pull('cdn')).toEqual([]);
      const layer = images.cdn?.layerDigests[0] as string;
      const blobs = new BlobIndex(createAwsClients(deployed.shape.config, LOCAL_CREDENTIALS).dynamo, deployed.shape.config.tableName);
      const deadline = Date.now() + 60_000;
      while (!(await blobs.getLink('hub/library/cdn', layer)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 250));
      expect(await blobs.getLink('hub/library/cdn', layer)).toBeDefined();
      // skopeo fetched the CDN path itself, and so did the copier function.
      expect(proxy.count(`GET /_cdn/${layer}`)).toBe(2);
      expect(deployed.shape.functions.pullThroughCopier?.coldStarts()).toBeGreaterThanOrEqual(1);
      expect(deployed.refusals).toEqual([]);
    } finally {
      proxy.redirectBlobs(false);
    }
  });
});
