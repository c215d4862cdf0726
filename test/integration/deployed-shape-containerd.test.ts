/**
 * containerd through the local deployed shape, with no upload gateway: `ctr images push` sends
 * each blob as POST then one monolithic PUT, which the front door sends straight to S3 (the
 * checksum verified there), so a 300 MiB layer, far over API Gateway's 10 MB, pushes and comes
 * back byte-identical. The S3 event's recorder (or the manifest PUT's miss path) makes the blobs
 * visible in the repository.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useDeployedShape } from '../support/deployed-shape.js';
import { startContainerd, type Containerd } from '../support/containerd.js';
import { digestOfFile, writeImage, type WrittenImage } from '../support/oci-image.js';

const MiB = 1024 * 1024;
const LAYER_MIB = Number(process.env.DEPLOYED_SHAPE_TEST_LAYER_MIB ?? 300);
const SLOW_TEST_MS = 10 * 60 * 1000;

describe('containerd through the local deployed shape, without an upload gateway', () => {
  const deployed = useDeployedShape('dsc');
  let containerd: Containerd;
  let image: WrittenImage;

  beforeAll(async () => {
    const started = Date.now();
    [containerd, image] = await Promise.all([
      startContainerd(join(deployed.workDir, 'containerd')),
      writeImage(join(deployed.workDir, 'source'), {
        tag: 'big',
        seed: 'deployed-shape/containerd',
        layers: [{ sizeBytes: 64 * 1024 }, { sizeBytes: LAYER_MIB * MiB }],
      }),
    ]);
    await containerd.importLayout(join(deployed.workDir, 'source'), 'source.local/big');
    console.info(`[deployed-shape ctr] containerd started and a ${LAYER_MIB} MiB layer written in ${seconds(started)}`);
  }, SLOW_TEST_MS);

  afterAll(async () => {
    await containerd?.stop();
  });

  it(
    `pushes an image with a ${LAYER_MIB} MiB layer and pulls it back byte-identical`,
    async () => {
      const remote = `${deployed.host}/ctr/big:v1`;
      const pushStarted = Date.now();
      await containerd.push(remote, 'source.local/big:big');
      const pushSeconds = seconds(pushStarted);
      // No body went through API Gateway: it would have refused the layer (10 MB).
      expect(deployed.refusals).toEqual([]);

      const blobs = [image.manifestDigest, image.configDigest, ...image.layerDigests];
      await containerd.forget('source.local/big:big', blobs);
      await expect(stat(containerd.blobPath(image.layerDigests[1]!))).rejects.toThrow();
      const pullStarted = Date.now();
      await containerd.fetch(remote);
      console.info(`[deployed-shape ctr] push ${pushSeconds}, pull ${seconds(pullStarted)}`);
      for (const digest of blobs) expect(await digestOfFile(containerd.blobPath(digest))).toBe(digest);
      expect((await stat(containerd.blobPath(image.layerDigests[1]!))).size).toBeGreaterThan(LAYER_MIB * MiB);
    },
    SLOW_TEST_MS,
  );
});

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}
