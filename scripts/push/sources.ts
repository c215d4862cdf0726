/**
 * What the push command pushes, read from disk without loading layers:
 *
 * - an OCI image layout (a directory, or a tar of one as `skopeo copy … oci-archive:` writes):
 *   the manifests are pushed exactly as they are, index children before the index;
 * - a `docker save` archive (`manifest.json`, a config and layer tars): turned into a Docker
 *   schema2 manifest naming the exact layer bytes in the archive, so nothing is recompressed.
 *
 * Blobs are opened as streams over byte ranges of their files (or of the archive): memory
 * does not grow with layer size.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { TarIndex } from './tar-index.js';

export const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

const REF_NAME = 'org.opencontainers.image.ref.name';
/** Manifests and configs are read whole; anything bigger is not one. */
const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;

export interface BlobSource {
  digest: string;
  size: number;
  /** The bytes from `start` (inclusive) to `end` (exclusive), streamed from disk. */
  open(start?: number, end?: number): Readable;
}

export interface ManifestSource {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface PushPlan {
  kind: 'oci-layout' | 'docker-archive';
  /** Every blob once, configs and layers of every manifest. */
  blobs: BlobSource[];
  /** In push order: children before the index that lists them; the last one gets the tag. */
  manifests: ManifestSource[];
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
}

/** Files of a directory or of a tar archive, by relative path. */
interface Files {
  size(path: string): Promise<number | undefined>;
  read(path: string): Promise<Buffer>;
  open(path: string, size: number): BlobSource['open'];
}

class DirectoryFiles implements Files {
  constructor(private readonly root: string) {}

  async size(path: string): Promise<number | undefined> {
    try {
      const info = await stat(join(this.root, path));
      return info.isFile() ? info.size : undefined;
    } catch {
      return undefined;
    }
  }

  async read(path: string): Promise<Buffer> {
    const size = await this.size(path);
    if (size === undefined) throw new Error(`${join(this.root, path)} does not exist`);
    if (size > MAX_DOCUMENT_BYTES) throw new Error(`${join(this.root, path)} is too large for a manifest or config`);
    return readFile(join(this.root, path));
  }

  open(path: string, size: number): BlobSource['open'] {
    const file = join(this.root, path);
    return (start = 0, end = size) => createReadStream(file, { start, end: end - 1, highWaterMark: 1024 * 1024 });
  }
}

class TarFiles implements Files {
  constructor(private readonly index: TarIndex) {}

  async size(path: string): Promise<number | undefined> {
    return this.index.file(path)?.size;
  }

  async read(path: string): Promise<Buffer> {
    const entry = this.index.file(path);
    if (!entry) throw new Error(`${this.index.archive} has no ${path}`);
    if (entry.size > MAX_DOCUMENT_BYTES) throw new Error(`${path} in ${this.index.archive} is too large for a manifest or config`);
    return readStream(createReadStream(this.index.archive, { start: entry.offset, end: entry.offset + entry.size - 1 }), entry.size);
  }

  open(path: string, size: number): BlobSource['open'] {
    const entry = this.index.file(path)!;
    const archive = this.index.archive;
    return (start = 0, end = size) =>
      createReadStream(archive, { start: entry.offset + start, end: entry.offset + end - 1, highWaterMark: 1024 * 1024 });
  }
}

/**
 * Reads `<path>[:<selector>]`: the selector is a tag of an OCI layout (its ref.name
 * annotation), or a RepoTag (or position) of a `docker save` archive with several images.
 */
export async function loadSource(spec: string): Promise<PushPlan> {
  const { path, selector } = await splitSource(spec);
  const info = await stat(path);
  const files: Files = info.isDirectory() ? new DirectoryFiles(path) : new TarFiles(await TarIndex.read(path));
  const hasDockerManifest = (await files.size('manifest.json')) !== undefined;
  const hasOciIndex = (await files.size('index.json')) !== undefined;
  if (hasDockerManifest && (!info.isDirectory() || !hasOciIndex)) return dockerArchive(files, path, selector);
  if (hasOciIndex) return ociLayout(files, path, selector);
  throw new Error(`${path} is neither an OCI image layout (index.json) nor a docker save archive (manifest.json)`);
}

async function splitSource(spec: string): Promise<{ path: string; selector?: string }> {
  if (await exists(spec)) return { path: spec };
  for (let colon = spec.lastIndexOf(':'); colon > 0; colon = spec.lastIndexOf(':', colon - 1)) {
    const path = spec.slice(0, colon);
    if (await exists(path)) return { path, selector: spec.slice(colon + 1) };
  }
  throw new Error(`${spec}: no such file or directory`);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

// ---------------------------------------------------------------------------
// OCI image layout
// ---------------------------------------------------------------------------

async function ociLayout(files: Files, where: string, selector: string | undefined): Promise<PushPlan> {
  const index = JSON.parse((await files.read('index.json')).toString('utf8')) as { manifests?: Descriptor[] };
  const candidates = index.manifests ?? [];
  const tagOf = (descriptor: Descriptor) => descriptor.annotations?.[REF_NAME];
  let chosen: Descriptor | undefined;
  if (selector) {
    chosen =
      candidates.find((descriptor) => tagOf(descriptor) === selector) ??
      candidates.find((descriptor) => tagOf(descriptor)?.endsWith(`:${selector}`)) ??
      candidates.find((descriptor) => descriptor.digest === selector);
    if (!chosen) throw new Error(`${where} has no image tagged ${selector} (tags: ${candidates.map(tagOf).filter(Boolean).join(', ') || 'none'})`);
  } else if (candidates.length === 1) {
    chosen = candidates[0];
  } else {
    throw new Error(
      `${where} holds ${candidates.length} images: name one as ${where}:<tag> (tags: ${candidates.map(tagOf).filter(Boolean).join(', ')})`,
    );
  }

  const blobs = new Map<string, BlobSource>();
  const manifests = new Map<string, ManifestSource>();
  const blobPath = (digest: string) => `blobs/${digest.replace(':', '/')}`;

  const addBlob = async (descriptor: Descriptor) => {
    if (blobs.has(descriptor.digest)) return;
    const path = blobPath(descriptor.digest);
    const size = await files.size(path);
    if (size === undefined) {
      // A foreign (non-distributable) layer is fetched from its URLs by whoever pulls it.
      if (descriptor.urls?.length) return;
      throw new Error(`${where} lacks blob ${descriptor.digest}`);
    }
    if (size !== descriptor.size) throw new Error(`${where}: blob ${descriptor.digest} has ${size} bytes, its descriptor says ${descriptor.size}`);
    blobs.set(descriptor.digest, { digest: descriptor.digest, size, open: files.open(path, size) });
  };

  const walk = async (descriptor: Descriptor, depth: number): Promise<void> => {
    if (manifests.has(descriptor.digest)) return;
    if (depth > 8) throw new Error(`${where}: indexes nested too deep`);
    const bytes = await files.read(blobPath(descriptor.digest));
    const actual = digestOf(bytes, descriptor.digest);
    if (actual !== descriptor.digest) throw new Error(`${where}: manifest ${descriptor.digest} hashes to ${actual}`);
    const document = JSON.parse(bytes.toString('utf8')) as {
      mediaType?: string;
      manifests?: Descriptor[];
      config?: Descriptor;
      layers?: Descriptor[];
    };
    const mediaType = descriptor.mediaType ?? document.mediaType ?? (document.manifests ? MEDIA_TYPES.ociIndex : MEDIA_TYPES.ociManifest);
    if (document.manifests) {
      for (const child of document.manifests) await walk(child, depth + 1);
    } else {
      if (document.config) await addBlob(document.config);
      for (const layer of document.layers ?? []) await addBlob(layer);
    }
    manifests.set(descriptor.digest, { digest: descriptor.digest, mediaType, bytes });
  };
  await walk(chosen!, 0);
  return { kind: 'oci-layout', blobs: [...blobs.values()], manifests: [...manifests.values()] };
}

function digestOf(bytes: Buffer, like: string): string {
  const algorithm = like.startsWith('sha512:') ? 'sha512' : 'sha256';
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

// ---------------------------------------------------------------------------
// docker save
// ---------------------------------------------------------------------------

interface DockerSaveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

async function dockerArchive(files: Files, where: string, selector: string | undefined): Promise<PushPlan> {
  const entries = JSON.parse((await files.read('manifest.json')).toString('utf8')) as DockerSaveEntry[];
  if (!Array.isArray(entries) || entries.length === 0) throw new Error(`${where}: manifest.json lists no image`);
  let entry: DockerSaveEntry | undefined;
  if (selector) {
    entry =
      entries.find((candidate) => candidate.RepoTags?.includes(selector)) ??
      entries.find((candidate) => candidate.RepoTags?.some((tag) => tag.endsWith(`/${selector}`))) ??
      (/^\d+$/.test(selector) ? entries[Number(selector)] : undefined);
    if (!entry)
      throw new Error(
        `${where} has no image ${selector} (images: ${entries.map((candidate, index) => candidate.RepoTags?.join(' ') || `#${index}`).join(', ')})`,
      );
  } else if (entries.length === 1) {
    entry = entries[0];
  } else {
    throw new Error(`${where} holds ${entries.length} images: name one as ${where}:<repo:tag> or ${where}:<position>`);
  }

  const config = await files.read(entry!.Config);
  const configDigest = digestOf(config, 'sha256:');
  const blobs = new Map<string, BlobSource>();
  blobs.set(configDigest, { digest: configDigest, size: config.length, open: files.open(entry!.Config, config.length) });

  const layers: Descriptor[] = [];
  for (const path of entry!.Layers) {
    const size = await files.size(path);
    if (size === undefined) throw new Error(`${where} lacks layer ${path}`);
    const open = files.open(path, size);
    // Layers stored by digest (docker 25+) are named after it; older archives are hashed here, streamed.
    const named = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(path);
    const digest = named ? `sha256:${named[1]}` : `sha256:${await hashStream(open())}`;
    const magic = await readStream(open(0, Math.min(size, 4)), Math.min(size, 4));
    const gzip = magic[0] === 0x1f && magic[1] === 0x8b;
    if (magic.length === 4 && magic.readUInt32LE(0) === 0xfd2fb528)
      throw new Error(`${where}: layer ${path} is zstd-compressed, which a Docker schema2 manifest cannot name`);
    layers.push({ mediaType: gzip ? MEDIA_TYPES.dockerLayerGzip : MEDIA_TYPES.dockerLayer, digest, size });
    if (!blobs.has(digest)) blobs.set(digest, { digest, size, open });
  }
  const manifest = Buffer.from(
    JSON.stringify(
      {
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.dockerManifest,
        config: { mediaType: MEDIA_TYPES.dockerConfig, size: config.length, digest: configDigest },
        layers,
      },
      null,
      3,
    ),
  );
  return {
    kind: 'docker-archive',
    blobs: [...blobs.values()],
    manifests: [{ digest: digestOf(manifest, 'sha256:'), mediaType: MEDIA_TYPES.dockerManifest, bytes: manifest }],
  };
}

async function hashStream(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function readStream(stream: Readable, expected: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  const bytes = Buffer.concat(chunks);
  if (bytes.length !== expected) throw new Error(`read ${bytes.length} bytes where ${expected} were expected`);
  return bytes;
}
