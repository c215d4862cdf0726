/**
 * Real clients through the pull-through cache's transparent entries (docs/pull-through.md),
 * against Debian's docker-registry on loopback as "Docker Hub": dockerd with `--registry-mirror`
 * on the Docker mirror entry pulls a bare `app:v1` (and a push to the mirror entry is refused),
 * and containers/image (skopeo, as podman) with a registries.conf mirror `<registry>/hub` for
 * docker.io pulls `docker.io/library/app:v1` byte for byte; podman pulls the short name
 * `<registry>/hub/app:v1` through the prefix.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCli } from '../auth/admin-cli.js';
import { createPodman, createSkopeo } from '../support/clients.js';
import { DOCKERD, startDockerd, type Dockerd } from '../support/dockerd.js';
import { blobDifferences } from '../support/layout-compare.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';
import { startUpstreamRegistry, type UpstreamRegistry } from '../support/upstream-registry.js';
import { useLocalStack } from '../integration/local-stack.js';

const SLOW_MS = 5 * 60 * 1000;
const stack = useLocalStack('ptc', { dockerMirrorPort: 0 });
let upstream: UpstreamRegistry;
let image: WrittenImage;
const layout = () => join(stack.dataDir, 'source');

beforeAll(async () => {
  upstream = await startUpstreamRegistry({ dataDir: join(stack.dataDir, 'upstream') });
  image = await writeImage(layout(), { tag: 'v1', seed: 'pull-through/clients', layers: [{ sizeBytes: 300_000, compression: 'gzip' }] });
  await upstream.push(layout(), 'v1', 'library/app');
  await adminCli(stack.dataDir, ['upstream', 'add', 'hub', '--url', upstream.url, '--prefix', 'hub', '--docker-hub']);
}, SLOW_MS);

afterAll(async () => {
  await upstream?.stop();
});

describe('containers/image with a registries.conf mirror for docker.io', () => {
  it('pulls docker.io/library/app:v1 from <registry>/hub, byte for byte', async () => {
    const conf = join(stack.dataDir, 'registries.conf');
    const host = new URL(stack.registry.url).host;
    await writeFile(
      conf,
      [
        '[[registry]]',
        'prefix = "docker.io"',
        'location = "docker.io"',
        '[[registry.mirror]]',
        `location = "${host}/hub"`,
        'insecure = true',
        '',
      ].join('\n'),
    );
    const skopeo = await createSkopeo(join(stack.dataDir, 'skopeo'));
    const pulled = join(stack.dataDir, 'pulled');
    await skopeo.run(['--registries-conf', conf, 'copy', '--preserve-digests', 'docker://docker.io/library/app:v1', `oci:${pulled}:v1`]);
    expect(await blobDifferences(layout(), pulled, [image.manifestDigest, image.configDigest, ...image.layerDigests])).toEqual([]);
  });
});

describe('podman through the prefix', () => {
  it('pulls <registry>/hub/app:v1 (Docker Hub short name, library/ added) with the upstream digest', async () => {
    // podman refuses a long run root: its store lives under a short temp path.
    const workDir = await mkdtemp(join(tmpdir(), 'ptc-podman-'));
    const podman = await createPodman(workDir);
    try {
      const reference = `${new URL(stack.registry.url).host}/hub/app:v1`;
      await podman.pull(reference);
      expect((await podman.inspectImage(reference)).Digest).toBe(image.manifestDigest);
    } finally {
      await podman.destroy();
      await rm(workDir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!DOCKERD)('dockerd with registry-mirrors', () => {
  let dockerd: Dockerd;

  beforeAll(async () => {
    const dir = join(stack.dataDir, 'docker');
    await mkdir(dir, { recursive: true });
    dockerd = await startDockerd(dir, ['--registry-mirror', stack.registry.dockerMirrorUrl!]);
  }, SLOW_MS);

  afterAll(async () => {
    await dockerd?.stop();
  });

  it(
    'docker pull app:v1 comes from the mirror entry; a push there is refused',
    async () => {
      await dockerd.docker(['pull', 'app:v1']);
      const { stdout } = await dockerd.docker(['image', 'inspect', '--format', '{{json .RepoDigests}}', 'app:v1']);
      expect(JSON.parse(stdout)).toContain(`app@${image.manifestDigest}`);
      const push = await fetch(`${stack.registry.dockerMirrorUrl}/v2/library/app/blobs/uploads/`, { method: 'POST' });
      expect(push.status).toBe(405);
    },
    SLOW_MS,
  );
});
