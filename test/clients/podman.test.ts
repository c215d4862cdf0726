/**
 * podman against the registry under test: images pushed by skopeo pull into
 * podman's store intact, and what podman pushes back is intact too.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { uploadedBlobs } from '../support/client-debug-log.js';
import { createPodman, createSkopeo, type Podman, type Skopeo } from '../support/clients.js';
import { readPulledImage } from '../support/layout-compare.js';
import { digestOfFile, writeImage, writeMultiArchIndex, type WrittenImage, type WrittenIndex } from '../support/oci-image.js';
import { startRegistryUnderTest, type RegistryUnderTest } from '../support/registry-under-test.js';

const MiB = 1024 * 1024;
const SLOW_TEST_MS = 5 * 60 * 1000;

describe('podman against the registry under test', () => {
  let registry: RegistryUnderTest;
  let workDir: string;
  let skopeo: Skopeo;
  let podman: Podman;
  let source: string;
  /** Pushed by skopeo to podman/source:v1 before the tests. */
  let pushedImage: WrittenImage;
  /** Only ever in the local layout: podman has to upload it itself. */
  let unseenImage: WrittenImage;
  let multiArch: WrittenIndex;
  let pulled: Promise<void> | undefined;

  beforeAll(async () => {
    registry = await startRegistryUnderTest();
    // Short and lower case: podman limits the run root to 50 characters, and names an
    // image pulled from oci:<dir> after the directory.
    workDir = join(tmpdir(), `podman-test-${randomUUID().slice(0, 8)}`);
    skopeo = await createSkopeo(join(workDir, 'skopeo'));
    podman = await createPodman(join(workDir, 'podman'));
    await mkdir(join(workDir, 'pulled'), { recursive: true });
    source = join(workDir, 'source');
    pushedImage = await writeImage(source, {
      tag: 'pushed',
      seed: 'podman/pushed',
      layers: [{ sizeBytes: 200 * 1024 }, { sizeBytes: 22 * MiB }, { sizeBytes: 30 * 1024, compression: 'none' }],
    });
    unseenImage = await writeImage(source, {
      tag: 'unseen',
      seed: 'podman/unseen',
      layers: [{ sizeBytes: 100 * 1024 }, { sizeBytes: 21 * MiB }],
    });
    multiArch = await writeMultiArchIndex(
      source,
      'multi',
      [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64' },
      ],
      { seed: 'podman/multi' },
    );
    await skopeo.copy(`oci:${source}:pushed`, ref('podman/source:v1'), ['--preserve-digests']);
    await skopeo.copy(`oci:${source}:multi`, ref('podman/multi:v1'), ['--all', '--preserve-digests']);
  }, SLOW_TEST_MS);

  afterAll(async () => {
    await registry?.stop();
    await podman?.destroy();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  /** `host/repo:tag` as podman names images. */
  const image = (repositoryAndTag: string) => `${registry.host}/${repositoryAndTag}`;
  const ref = (repositoryAndTag: string) => `docker://${image(repositoryAndTag)}`;
  /** Tests that need the pulled image share one pull, whichever runs first. */
  const pullSourceOnce = () => (pulled ??= podman.pull(image('podman/source:v1')).then(() => undefined));

  test(
    'podman pull stores the image skopeo pushed: same manifest digest, config, layers and files',
    async () => {
      await pullSourceOnce();

      const inspected = await podman.inspectImage(image('podman/source:v1'));
      expect(inspected.Digest).toBe(pushedImage.manifestDigest);
      // podman's image ID is the config digest: the config arrived unchanged.
      expect(`sha256:${inspected.Id}`).toBe(pushedImage.configDigest);
      expect(inspected.RootFS.Layers).toEqual(pushedImage.diffIds);
      expect(inspected.Architecture).toBe('amd64');
      expect(inspected.Labels).toEqual({ 'org.example.test-seed': 'podman/pushed' });

      expect(await filesThatDiffer(image('podman/source:v1'), pushedImage)).toEqual([]);
    },
    SLOW_TEST_MS,
  );

  test(
    'podman push of the pulled image to another repository gives back the same image',
    async () => {
      await pullSourceOnce();
      const digestFile = join(workDir, 'copy.digest');
      await podman.push(image('podman/source:v1'), image('podman/copy:v1'), ['--digestfile', digestFile]);

      // podman knows where the compressed layers came from and reuses them (cross-repository
      // mount), so nothing is recompressed and the manifest is byte-identical.
      expect((await readFile(digestFile, 'utf8')).trim()).toBe(pushedImage.manifestDigest);
      const raw = await skopeo.inspect(ref('podman/copy:v1'), ['--raw']);
      expect(raw.stdout).toBe(pushedImage.manifest.toString('utf8'));
      await expectIntactInRegistry('podman/copy:v1', pushedImage);
    },
    SLOW_TEST_MS,
  );

  test(
    'podman push of an image the registry has never seen uploads every layer intact',
    async () => {
      await podman.pull(`oci:${source}:unseen`);
      // podman's image ID is the config digest's hex.
      const imageId = unseenImage.configDigest.replace(/^sha256:/, '');
      const pushed = await podman.push(imageId, image('podman/unseen:v1'), ['--log-level=debug']);

      // Layers are stored uncompressed and recompressed on push, so the layer digests
      // (and the manifest digest) may differ from the generated ones; diff_ids may not.
      expect(uploadedBlobs(pushed.stderr).length).toBe(unseenImage.layerDigests.length + 1);
      await expectIntactInRegistry('podman/unseen:v1', unseenImage);
    },
    SLOW_TEST_MS,
  );

  test(
    'podman tag and push of a new tag: both tags listed, the new one resolving to what podman pushed',
    async () => {
      await pullSourceOnce();
      await podman.run(['tag', image('podman/source:v1'), image('podman/source:v2')]);
      const digestFile = join(workDir, 'v2.digest');
      await podman.push(image('podman/source:v2'), undefined, ['--digestfile', digestFile]);

      const pushedDigest = (await readFile(digestFile, 'utf8')).trim();
      expect(pushedDigest).toBe(pushedImage.manifestDigest);
      expect((await skopeo.listTags(ref('podman/source'))).sort()).toEqual(['v1', 'v2']);
      const inspected = JSON.parse((await skopeo.inspect(ref('podman/source:v2'))).stdout) as { Digest: string };
      expect(inspected.Digest).toBe(pushedDigest);
    },
    SLOW_TEST_MS,
  );

  test(
    'podman pull --arch picks the matching image out of a multi-arch index',
    async () => {
      for (const expected of multiArch.images) {
        const name = image('podman/multi:v1');
        await podman.pull(name, ['--arch', expected.platform.architecture]);
        const inspected = await podman.inspectImage(name);
        expect(inspected.Architecture).toBe(expected.platform.architecture);
        expect(`sha256:${inspected.Id}`).toBe(expected.configDigest);
        expect(inspected.RepoDigests).toContain(`${registry.host}/podman/multi@${expected.manifestDigest}`);
        expect(await filesThatDiffer(name, expected)).toEqual([]);
      }
    },
    SLOW_TEST_MS,
  );

  /**
   * Pulls `repositoryAndTag` back with skopeo and checks what a user of the image
   * depends on: the config is the same blob, and every layer unpacks to the same tar.
   */
  async function expectIntactInRegistry(repositoryAndTag: string, expected: WrittenImage): Promise<void> {
    const pulledDir = join(workDir, 'pulled', repositoryAndTag.replace(/[/:]/g, '-'));
    await skopeo.copy(ref(repositoryAndTag), `oci:${pulledDir}:check`, ['--preserve-digests']);
    const pulledImage = await readPulledImage(pulledDir, 'check');
    expect(pulledImage.manifest.config.digest).toBe(expected.configDigest);
    expect(pulledImage.config.rootfs.diff_ids).toEqual(expected.diffIds);
    expect(pulledImage.layerDiffIds).toEqual(expected.diffIds);
  }

  /** Files of `expected` whose content in podman's copy of the image is missing or different. */
  async function filesThatDiffer(reference: string, expected: WrittenImage): Promise<string[]> {
    const { stdout } = await podman.run(['image', 'mount', reference]);
    const root = stdout.trim();
    try {
      const differences: string[] = [];
      for (const file of expected.files) {
        const actual = await digestOfFile(join(root, file.path)).catch((error: Error) => error.message);
        if (actual !== `sha256:${file.sha256}`) differences.push(`${file.path}: ${actual}`);
      }
      return differences;
    } finally {
      await podman.run(['image', 'unmount', reference]);
    }
  }
});
