/**
 * skopeo and podman (containers/image: POST, one chunked PATCH with the whole blob, an empty PUT)
 * through the local deployed shape, with and without the upload gateway:
 *
 * - small layers fit API Gateway and Lambda: both push, and the image comes back intact;
 * - a 300 MiB layer without the gateway fails, and the client shows the registry's OCI error
 *   (the limit and the ways out), not API Gateway's bare 413;
 * - with REGISTRY_UPLOAD_GATEWAY=1 the same PATCH reaches the gateway through the same host, and
 *   the image comes back byte-identical.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPodman, createSkopeo, ToolError, type Podman, type Skopeo } from '../support/clients.js';
import { loggedRequests } from '../support/client-debug-log.js';
import { useDeployedShape, type DeployedShapeUnderTest } from '../support/deployed-shape.js';
import { blobDifferences, imageBlobs, pulledManifestDigest, readPulledImage } from '../support/layout-compare.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';

const MiB = 1024 * 1024;
const LAYER_MIB = Number(process.env.DEPLOYED_SHAPE_TEST_LAYER_MIB ?? 300);
const SLOW_TEST_MS = 10 * 60 * 1000;

describe('skopeo and podman through the local deployed shape', () => {
  // Short names: podman limits its run root to 50 characters.
  const plain = useDeployedShape('dsp');
  const withGateway = useDeployedShape('dsg', { uploadGateway: true });
  let workDir: string;
  let skopeo: Skopeo;
  let podman: Podman;
  let source: string;
  let small: WrittenImage;
  let big: WrittenImage;

  beforeAll(async () => {
    workDir = plain.workDir;
    source = join(workDir, 'source');
    skopeo = await createSkopeo(join(workDir, 'skopeo'));
    podman = await createPodman(join(workDir, 'podman'));
    small = await writeImage(source, { tag: 'small', seed: 'deployed-shape/small', layers: [{ sizeBytes: 64 * 1024 }, { sizeBytes: 512 * 1024 }] });
    big = await writeImage(source, { tag: 'big', seed: 'deployed-shape/big', layers: [{ sizeBytes: 64 * 1024 }, { sizeBytes: LAYER_MIB * MiB }] });
    await podman.pull(`oci:${source}:big`);
  }, SLOW_TEST_MS);

  afterAll(async () => {
    await podman?.destroy();
  });

  const ref = (shape: DeployedShapeUnderTest, repositoryAndTag: string) => `docker://${shape.host}/${repositoryAndTag}`;

  async function failureOf(pushing: Promise<unknown>): Promise<string> {
    const failure = await pushing.then(
      () => new Error('the push succeeded, but a layer over 10 MB cannot pass API Gateway'),
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(ToolError);
    return `${(failure as ToolError).stdout}\n${(failure as ToolError).stderr}`;
  }

  it('skopeo pushes an image with small layers without the gateway, and pulls it back intact', async () => {
    await skopeo.copy(`oci:${source}:small`, ref(plain, 'skopeo/small:v1'), ['--preserve-digests']);
    const pulled = join(workDir, 'pulled-skopeo-small');
    await skopeo.copy(ref(plain, 'skopeo/small:v1'), `oci:${pulled}:v1`, ['--preserve-digests']);
    expect(await pulledManifestDigest(pulled, 'v1')).toBe(small.manifestDigest);
    expect(await blobDifferences(source, pulled, imageBlobs(small))).toEqual([]);
  });

  it('podman pushes an image with small layers without the gateway', async () => {
    await podman.pull(`oci:${source}:small`);
    const digestFile = join(workDir, 'podman-small.digest');
    await podman.push(small.configDigest.replace(/^sha256:/, ''), `${plain.host}/podman/small:v1`, ['--digestfile', digestFile]);
    const pulled = join(workDir, 'pulled-podman-small');
    await skopeo.copy(ref(plain, 'podman/small:v1'), `oci:${pulled}:v1`, ['--preserve-digests']);
    expect(await pulledManifestDigest(pulled, 'v1')).toBe((await readFile(digestFile, 'utf8')).trim());
    expect((await readPulledImage(pulled, 'v1')).layerDiffIds).toEqual(small.diffIds);
  });

  it(
    `without the gateway, a ${LAYER_MIB} MiB layer fails with the registry's error text in skopeo's and podman's output`,
    async () => {
      const skopeoOutput = await failureOf(skopeo.copy(`oci:${source}:big`, ref(plain, 'skopeo/big:v1'), ['--preserve-digests']));
      console.info(`[deployed-shape] skopeo said: ${skopeoOutput.trim().split('\n').pop()}`);
      expect(skopeoOutput).toMatch(/4\.4 MiB/);
      expect(skopeoOutput).toMatch(/upload gateway/);

      const podmanOutput = await failureOf(podman.push(big.configDigest.replace(/^sha256:/, ''), `${plain.host}/podman/big:v1`));
      console.info(`[deployed-shape] podman said: ${podmanOutput.trim().split('\n').pop()}`);
      expect(podmanOutput).toMatch(/4\.4 MiB/);
      expect(podmanOutput).toMatch(/upload gateway/);
    },
    SLOW_TEST_MS,
  );

  it('with the upload gateway, upload Locations are absolute on the registry own host, with a ticket', async () => {
    // As the CDK configures it: the gateway behind the front door has no host name of its own.
    const location = await withGateway.http.openUpload('gateway/location');
    expect(location).toMatch(new RegExp(`^${withGateway.shape.url}/v2/gateway/location/blobs/uploads/[^/?]+\\?ticket=v1\\.`));
  });

  it(
    `with the upload gateway, skopeo pushes a ${LAYER_MIB} MiB layer through the same host and pulls it back byte-identical`,
    async () => {
      const started = Date.now();
      const pushed = await skopeo.copy(`oci:${source}:big`, ref(withGateway, 'skopeo/big:v1'), ['--preserve-digests', '--debug']);
      const pushSeconds = seconds(started);
      const uploads = loggedRequests(pushed.stderr).filter((request) => request.url.includes('/blobs/uploads/'));
      expect(new Set(uploads.map((request) => new URL(request.url).host))).toEqual(new Set([withGateway.host]));
      const pulled = join(workDir, 'pulled-skopeo-big');
      const pullStarted = Date.now();
      await skopeo.copy(ref(withGateway, 'skopeo/big:v1'), `oci:${pulled}:v1`, ['--preserve-digests']);
      console.info(`[deployed-shape] skopeo push ${pushSeconds}, pull ${seconds(pullStarted)} through the gateway`);
      expect(await pulledManifestDigest(pulled, 'v1')).toBe(big.manifestDigest);
      expect(await blobDifferences(source, pulled, imageBlobs(big))).toEqual([]);
    },
    SLOW_TEST_MS,
  );

  it(
    `with the upload gateway, podman pushes a ${LAYER_MIB} MiB layer, and it comes back intact`,
    async () => {
      const digestFile = join(workDir, 'podman-big.digest');
      const started = Date.now();
      await podman.push(big.configDigest.replace(/^sha256:/, ''), `${withGateway.host}/podman/big:v1`, ['--digestfile', digestFile]);
      const pushSeconds = seconds(started);
      const pulled = join(workDir, 'pulled-podman-big');
      await podman.run(['rmi', '--force', big.configDigest.replace(/^sha256:/, '')]);
      const pullStarted = Date.now();
      await podman.pull(`${withGateway.host}/podman/big:v1`);
      console.info(`[deployed-shape] podman push ${pushSeconds}, pull ${seconds(pullStarted)} through the gateway`);
      await skopeo.copy(ref(withGateway, 'podman/big:v1'), `oci:${pulled}:v1`, ['--preserve-digests']);
      expect(await pulledManifestDigest(pulled, 'v1')).toBe((await readFile(digestFile, 'utf8')).trim());
      const image = await readPulledImage(pulled, 'v1');
      expect(image.manifest.config.digest).toBe(big.configDigest);
      expect(image.layerDiffIds).toEqual(big.diffIds);
    },
    SLOW_TEST_MS,
  );
});

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}
