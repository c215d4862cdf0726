/**
 * A private containerd for tests: its own root, state, socket and namespace, no CRI and no
 * snapshotter that needs the host (nothing is unpacked), and `ctr` against it. Images come in as
 * OCI layouts (test/support/oci-image.ts) through `ctr images import`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runTool, type ToolResult } from './clients.js';
import { startDaemon } from './daemon.js';

const START_TIMEOUT_MS = 20_000;
const NAMESPACE = 'registry-test';

export interface Containerd {
  ctr(args: string[]): Promise<ToolResult>;
  /** Imports the OCI layout at `layoutDir` (tags become `<baseName>:<tag>`). */
  importLayout(layoutDir: string, baseName: string): Promise<void>;
  /** `ctr images push --plain-http <remote> <local>`: POST then one monolithic PUT per blob. */
  push(remote: string, local: string): Promise<ToolResult>;
  /** Fetches an image's content (every platform) without unpacking it. */
  fetch(remote: string): Promise<ToolResult>;
  /** Removes the image and all its content, so a fetch has to download it again. */
  forget(image: string, digests: string[]): Promise<void>;
  /** Path of a blob in the content store (containerd verified its digest on the way in). */
  blobPath(digest: string): string;
  stop(): Promise<void>;
}

export async function startContainerd(workDir: string): Promise<Containerd> {
  const root = join(workDir, 'root');
  const socket = join(workDir, 'containerd.sock');
  await mkdir(root, { recursive: true });
  const config = join(workDir, 'config.toml');
  await writeFile(
    config,
    [
      'version = 2',
      `root = "${root}"`,
      `state = "${join(workDir, 'state')}"`,
      // Only the content store and metadata are needed: no CRI, no snapshotter needing the host.
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.overlayfs", "io.containerd.internal.v1.opt"]',
      '[grpc]',
      `  address = "${socket}"`,
      '[ttrpc]',
      `  address = "${socket}.ttrpc"`,
      '[metrics]',
      '  address = ""',
    ].join('\n'),
  );
  const ctr = (args: string[]) => runTool('ctr', ['--address', socket, '--namespace', NAMESPACE, ...args], { timeoutMs: 10 * 60 * 1000 });
  const daemon = await startDaemon({ command: 'containerd', args: ['--config', config], ready: () => ctr(['version']), timeoutMs: START_TIMEOUT_MS });
  return {
    ctr,
    async importLayout(layoutDir, baseName) {
      const tarball = `${layoutDir}.tar`;
      await runTool('tar', ['-C', layoutDir, '-cf', tarball, '.']);
      await ctr(['images', 'import', '--no-unpack', '--all-platforms', '--base-name', baseName, tarball]);
    },
    push: (remote, local) => ctr(['images', 'push', '--plain-http', remote, local]),
    fetch: (remote) => ctr(['content', 'fetch', '--plain-http', '--all-platforms', remote]),
    async forget(image, digests) {
      await ctr(['images', 'rm', '--sync', image]);
      await ctr(['content', 'rm', ...digests]);
    },
    blobPath: (digest) => join(root, 'io.containerd.content.v1.content', 'blobs', ...digest.split(':')),
    stop: () => daemon.stop(),
  };
}
