/**
 * The pull-through cache in the local deployed shape (the bundled registry function behind the
 * API Gateway and CloudFront emulators): an upstream added with the admin CLI, skopeo pulling
 * through its prefix byte for byte, and containerd with a `hosts.toml` mirror for docker.io
 * pulling `docker.io/library/app:v1` through `?ns=docker.io`.
 */
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCli } from '../auth/admin-cli.js';
import { createSkopeo } from '../support/clients.js';
import { startContainerd, type Containerd } from '../support/containerd.js';
import { useDeployedShape } from '../support/deployed-shape.js';
import { blobDifferences } from '../support/layout-compare.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';
import { startUpstreamRegistry, type UpstreamRegistry } from '../support/upstream-registry.js';

const SLOW_MS = 5 * 60 * 1000;

describe('pull-through in the deployed shape', () => {
  const deployed = useDeployedShape('ptds');
  let upstream: UpstreamRegistry;
  let containerd: Containerd;
  let image: WrittenImage;
  const layout = () => join(deployed.workDir, 'source');

  beforeAll(async () => {
    upstream = await startUpstreamRegistry({ dataDir: join(deployed.workDir, 'upstream') });
    image = await writeImage(layout(), { tag: 'v1', seed: 'pull-through/deployed-shape', layers: [{ sizeBytes: 200_000, compression: 'none' }] });
    await upstream.push(layout(), 'v1', 'library/app');
    await adminCli(join(deployed.workDir, 'registry'), ['upstream', 'add', 'hub', '--url', upstream.url, '--prefix', 'hub', '--docker-hub']);
    containerd = await startContainerd(join(deployed.workDir, 'ctr'));
  }, SLOW_MS);

  afterAll(async () => {
    await containerd?.stop();
    await upstream?.stop();
  });

  it(
    'skopeo pulls hub/app:v1 through the prefix, byte for byte',
    async () => {
      const pulled = join(deployed.workDir, 'pulled');
      const skopeo = await createSkopeo(join(deployed.workDir, 'skopeo'));
      await skopeo.copy(`docker://${deployed.host}/hub/app:v1`, `oci:${pulled}:v1`, ['--preserve-digests']);
      expect(await blobDifferences(layout(), pulled, [image.manifestDigest, image.configDigest, ...image.layerDigests])).toEqual([]);
      expect(deployed.refusals).toEqual([]);
    },
    SLOW_MS,
  );

  it(
    'ctr pulls docker.io/library/app:v1 through a hosts.toml mirror (ns=docker.io)',
    async () => {
      const hostsDir = join(deployed.workDir, 'hosts');
      await mkdir(join(hostsDir, 'docker.io'), { recursive: true });
      await writeFile(
        join(hostsDir, 'docker.io', 'hosts.toml'),
        [`[host."http://${deployed.host}"]`, '  capabilities = ["pull", "resolve"]', ''].join('\n'),
      );
      await containerd.ctr(['content', 'fetch', '--hosts-dir', hostsDir, 'docker.io/library/app:v1']);
      for (const digest of [image.manifestDigest, image.configDigest, ...image.layerDigests]) {
        expect((await stat(containerd.blobPath(digest))).isFile()).toBe(true);
      }
    },
    SLOW_MS,
  );

  it(
    'ctr pulls through a prefix mirror (override_path = true)',
    async () => {
      const other = await writeImage(join(deployed.workDir, 'other'), {
        tag: 'v1',
        seed: 'pull-through/prefix-mirror',
        layers: [{ sizeBytes: 100_000, compression: 'none' }],
      });
      await upstream.push(join(deployed.workDir, 'other'), 'v1', 'library/other');
      const hostsDir = join(deployed.workDir, 'hosts-prefix');
      await mkdir(join(hostsDir, 'docker.io'), { recursive: true });
      await writeFile(
        join(hostsDir, 'docker.io', 'hosts.toml'),
        [`[host."http://${deployed.host}/v2/hub"]`, '  capabilities = ["pull", "resolve"]', '  override_path = true', ''].join('\n'),
      );
      await containerd.ctr(['content', 'fetch', '--hosts-dir', hostsDir, 'docker.io/library/other:v1']);
      expect((await stat(containerd.blobPath(other.layerDigests[0]!))).isFile()).toBe(true);
    },
    SLOW_MS,
  );
});
