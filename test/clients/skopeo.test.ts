/**
 * skopeo (containers/image) against the registry under test: what a user
 * pushes must come back byte for byte.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mountRequests, requestsMentioning, skippedBlobs, uploadedBlobs } from '../support/client-debug-log.js';
import { createSkopeo, ToolError, type Skopeo } from '../support/clients.js';
import { blobDifferences, imageBlobs, pulledManifestDigest } from '../support/layout-compare.js';
import { platformName, writeImage, writeMultiArchIndex, type Platform, type WrittenImage, type WrittenIndex } from '../support/oci-image.js';
import { headBlob } from '../support/registry-http.js';
import { selectedRegistryKind, startRegistryUnderTest, type RegistryUnderTest } from '../support/registry-under-test.js';

const MiB = 1024 * 1024;
/** The big layer's size; raise it (e.g. OCI_TEST_BIG_LAYER_MIB=300) to try really large layers. */
const BIG_LAYER_MIB = Number(process.env.OCI_TEST_BIG_LAYER_MIB ?? 24);
const SLOW_TEST_MS = 5 * 60 * 1000;
/**
 * For behaviour the reference registry (distribution 2.8) is known to get wrong:
 * the test is expected to fail there, and still has to pass against ours.
 */
const unlessReferenceRegistry = selectedRegistryKind() === 'reference' ? test.fails : test;

const PLATFORMS: Platform[] = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64' },
];

describe('skopeo against the registry under test', () => {
  let registry: RegistryUnderTest;
  let workDir: string;
  let skopeo: Skopeo;
  /** The OCI layout every test pushes from. */
  let source: string;
  /** Three layers: one of BIG_LAYER_MIB (24 MiB by default), one left uncompressed. */
  let bigImage: WrittenImage;
  /** One small layer: for tests that push many times. */
  let smallImage: WrittenImage;
  let multiArch: WrittenIndex;

  beforeAll(async () => {
    registry = await startRegistryUnderTest();
    workDir = await mkdtemp(join(tmpdir(), 'skopeo-client-test-'));
    skopeo = await createSkopeo(join(workDir, 'skopeo'));
    // skopeo creates an oci: layout directory, but not its parent.
    await mkdir(join(workDir, 'pulled'));
    source = join(workDir, 'source');
    bigImage = await writeImage(source, {
      tag: 'big',
      seed: 'skopeo/big',
      layers: [{ sizeBytes: 300 * 1024 }, { sizeBytes: BIG_LAYER_MIB * MiB }, { sizeBytes: 40 * 1024, compression: 'none' }],
    });
    smallImage = await writeImage(source, { tag: 'small', seed: 'skopeo/small', layers: [{ sizeBytes: 16 * 1024 }] });
    multiArch = await writeMultiArchIndex(source, 'multi', PLATFORMS, { seed: 'skopeo/multi' });
  }, SLOW_TEST_MS);

  afterAll(async () => {
    await registry?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  const ref = (repositoryAndTag: string) => `docker://${registry.host}/${repositoryAndTag}`;
  const pullDir = (name: string) => join(workDir, 'pulled', name);

  test(
    `an image with a ${BIG_LAYER_MIB} MiB layer pushed and pulled with --preserve-digests comes back byte-identical`,
    async () => {
      await skopeo.copy(`oci:${source}:big`, ref('round-trip/app:v1'), ['--preserve-digests']);
      const pulled = pullDir('round-trip');
      await skopeo.copy(ref('round-trip/app:v1'), `oci:${pulled}:v1`, ['--preserve-digests']);

      expect(await pulledManifestDigest(pulled, 'v1')).toBe(bigImage.manifestDigest);
      expect(await blobDifferences(source, pulled, imageBlobs(bigImage))).toEqual([]);
    },
    SLOW_TEST_MS,
  );

  test(
    'the registry serves the exact manifest bytes that were pushed, by tag and by digest',
    async () => {
      await skopeo.copy(`oci:${source}:big`, ref('raw-manifest/app:v1'), ['--preserve-digests']);

      const byTag = await skopeo.inspect(ref('raw-manifest/app:v1'), ['--raw']);
      const byDigest = await skopeo.inspect(ref(`raw-manifest/app@${bigImage.manifestDigest}`), ['--raw']);
      expect(byTag.stdout).toBe(bigImage.manifest.toString('utf8'));
      expect(byDigest.stdout).toBe(bigImage.manifest.toString('utf8'));
    },
    SLOW_TEST_MS,
  );

  test(
    'a multi-arch index pushed with --all comes back as the same index, and each platform as its own image',
    async () => {
      await skopeo.copy(`oci:${source}:multi`, ref('multi/arch:v1'), ['--all', '--preserve-digests']);

      const index = await skopeo.inspect(ref('multi/arch:v1'), ['--raw']);
      expect(index.stdout).toBe(multiArch.index.toString('utf8'));

      for (const image of multiArch.images) {
        const pulled = pullDir(`multi-${image.platform.architecture}`);
        await skopeo.copy(ref('multi/arch:v1'), `oci:${pulled}:v1`, [
          '--preserve-digests',
          '--override-os',
          image.platform.os,
          '--override-arch',
          image.platform.architecture,
        ]);
        expect(await pulledManifestDigest(pulled, 'v1'), platformName(image.platform)).toBe(image.manifestDigest);
        expect(await blobDifferences(source, pulled, imageBlobs(image)), platformName(image.platform)).toEqual([]);
      }

      const all = pullDir('multi-all');
      await skopeo.copy(ref('multi/arch:v1'), `oci:${all}:v1`, ['--all', '--preserve-digests']);
      expect(await pulledManifestDigest(all, 'v1')).toBe(multiArch.indexDigest);
      const everyBlob = [multiArch.indexDigest, ...multiArch.images.flatMap(imageBlobs)];
      expect(await blobDifferences(source, all, everyBlob)).toEqual([]);
    },
    SLOW_TEST_MS,
  );

  test(
    'a blob pushed to one repository is not reported present in another',
    async () => {
      await skopeo.copy(`oci:${source}:small`, ref('isolation/first:v1'), ['--preserve-digests']);

      const [layer] = smallImage.layerDigests;
      expect((await headBlob(registry.url, 'isolation/first', layer!)).status).toBe(200);
      expect((await headBlob(registry.url, 'isolation/second', layer!)).status).toBe(404);
    },
    SLOW_TEST_MS,
  );

  test(
    'pushing the same image to a second repository mounts its layers instead of uploading them again',
    async () => {
      // A fresh skopeo: its blob-info cache knows only the first push, so it must mount from there.
      const mounter = await createSkopeo(join(workDir, 'skopeo-mount'));
      await mounter.copy(`oci:${source}:big`, ref('mount/first:v1'), ['--preserve-digests']);
      const second = await mounter.copy(`oci:${source}:big`, ref('mount/second:v1'), ['--preserve-digests', '--debug']);
      const log = second.stderr;

      const context = requestsMentioning(log, '/v2/mount/second/').join('\n');
      // containers/image never tries to reuse a config blob, so the config is the only upload.
      expect(uploadedBlobs(log), context).toEqual([bigImage.configDigest]);
      expect(skippedBlobs(log), context).toEqual([...bigImage.layerDigests].sort());
      const mounts = mountRequests(log);
      for (const digest of bigImage.layerDigests) {
        expect(mounts, context).toContainEqual({ into: 'mount/second', from: 'mount/first', digest });
      }
      for (const [position, digest] of bigImage.layerDigests.entries()) {
        const head = await headBlob(registry.url, 'mount/second', digest);
        expect(head, `layer ${position}`).toEqual({ status: 200, contentLength: layerSize(position), dockerContentDigest: digest });
      }

      const pulled = pullDir('mount-second');
      await mounter.copy(ref('mount/second:v1'), `oci:${pulled}:v1`, ['--preserve-digests']);
      expect(await blobDifferences(source, pulled, imageBlobs(bigImage))).toEqual([]);
    },
    SLOW_TEST_MS,
  );

  // distribution 2.8 lists tags in storage order, not in the lexical order the spec requires.
  unlessReferenceRegistry(
    'list-tags reports every pushed tag, in lexical order',
    async () => {
      const tags = ['v10', 'latest', '1.0', 'beta', 'v2', 'V3', 'release_2024-01'];
      for (const tag of tags) await skopeo.copy(`oci:${source}:small`, ref(`tags/app:${tag}`), ['--preserve-digests']);

      const listed = await skopeo.listTags(ref('tags/app'));
      expect(listed).toEqual([...tags].sort());
    },
    SLOW_TEST_MS,
  );

  test(
    'after skopeo delete, the tag and the digest no longer resolve and the tag is no longer listed',
    async () => {
      await skopeo.copy(`oci:${source}:small`, ref('delete/app:doomed'), ['--preserve-digests']);
      await skopeo.copy(`oci:${source}:big`, ref('delete/app:kept'), ['--preserve-digests']);
      await skopeo.inspect(ref('delete/app:doomed'), ['--raw']);

      await skopeo.delete(ref('delete/app:doomed'));

      await expectManifestUnknown(skopeo.inspect(ref('delete/app:doomed'), ['--raw']));
      await expectManifestUnknown(skopeo.inspect(ref(`delete/app@${smallImage.manifestDigest}`), ['--raw']));
      expect(await skopeo.listTags(ref('delete/app'))).toEqual(['kept']);
      const kept = await skopeo.inspect(ref('delete/app:kept'), ['--raw']);
      expect(kept.stdout).toBe(bigImage.manifest.toString('utf8'));
    },
    SLOW_TEST_MS,
  );

  test(
    'multi-level repository names (team/app/api) push, pull and list like any other',
    async () => {
      await skopeo.copy(`oci:${source}:big`, ref('team/app/api:1.0'), ['--preserve-digests']);
      await skopeo.copy(`oci:${source}:small`, ref('team/app/api:1.1'), ['--preserve-digests']);

      const pulled = pullDir('team-app-api');
      await skopeo.copy(ref('team/app/api:1.0'), `oci:${pulled}:1.0`, ['--preserve-digests']);
      expect(await pulledManifestDigest(pulled, '1.0')).toBe(bigImage.manifestDigest);
      expect(await blobDifferences(source, pulled, imageBlobs(bigImage))).toEqual([]);
      // Order is the list-tags test's business; here only the set matters.
      expect((await skopeo.listTags(ref('team/app/api'))).sort()).toEqual(['1.0', '1.1']);
    },
    SLOW_TEST_MS,
  );

  /** Size of a layer of the big image as the generated manifest records it. */
  function layerSize(position: number): number {
    const manifest = JSON.parse(bigImage.manifest.toString('utf8')) as { layers: Array<{ size: number }> };
    return manifest.layers[position]!.size;
  }
});

/** skopeo must fail, and say the manifest is unknown (not, say, a connection or server error). */
async function expectManifestUnknown(inspection: Promise<unknown>): Promise<void> {
  const error = await inspection.then(
    () => new Error('skopeo inspect succeeded, but the manifest should be gone'),
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(ToolError);
  expect((error as ToolError).stderr).toMatch(/manifest unknown|not found/i);
}
