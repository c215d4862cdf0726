/**
 * Generates OCI images as OCI image layouts on disk
 * (https://github.com/opencontainers/image-spec/blob/main/image-layout.md),
 * deterministically from a seed, so tests can push them with real clients and
 * compare what comes back byte for byte.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { bytesOf, pseudoRandomBytes, writeTarLayer, type LayerCompression, type LayerFile, type TarEntry, type WrittenLayer } from './tar-layer.js';

export const MEDIA_TYPES = {
  imageIndex: 'application/vnd.oci.image.index.v1+json',
  imageManifest: 'application/vnd.oci.image.manifest.v1+json',
  imageConfig: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
} as const;

const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
const FIXED_CREATED = '2024-01-01T00:00:00Z';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

export interface LayerSpec {
  /** Size of the pseudo-random file in the layer; the layer is slightly larger (tar headers). */
  sizeBytes: number;
  /** Defaults to gzip. */
  compression?: LayerCompression;
}

export interface ImageSpec {
  tag: string;
  layers: LayerSpec[];
  /** Defaults to linux/amd64. */
  platform?: Platform;
  seed: string;
}

export interface WrittenImage {
  manifestDigest: string;
  /** The exact manifest bytes stored in the layout: a registry must return these. */
  manifest: Buffer;
  manifestSize: number;
  configDigest: string;
  layerDigests: string[];
  /** sha256 of each uncompressed layer tar, as listed in the config's rootfs.diff_ids. */
  diffIds: string[];
  /** Files the image's root filesystem contains, with their content digests. */
  files: LayerFile[];
  platform: Platform;
}

export interface WrittenIndex {
  indexDigest: string;
  index: Buffer;
  images: WrittenImage[];
}

/** Writes one single-platform image into the layout at `dir` and tags it `spec.tag`. */
export async function writeImage(dir: string, spec: ImageSpec): Promise<WrittenImage> {
  await initLayout(dir);
  const image = await writeImageBlobs(dir, spec);
  await tagInLayout(dir, spec.tag, {
    mediaType: MEDIA_TYPES.imageManifest,
    digest: image.manifestDigest,
    size: image.manifestSize,
  });
  return image;
}

/**
 * Writes one image per platform plus an OCI image index over them, and tags
 * the index `tag`. Platform images are blobs only, reachable through the index.
 */
export async function writeMultiArchIndex(
  dir: string,
  tag: string,
  platforms: Platform[],
  options: { seed?: string; layers?: LayerSpec[] } = {},
): Promise<WrittenIndex> {
  await initLayout(dir);
  const seed = options.seed ?? `multi-arch/${tag}`;
  const layers = options.layers ?? [{ sizeBytes: 256 * 1024 }, { sizeBytes: 64 * 1024 }];
  const images: WrittenImage[] = [];
  for (const platform of platforms) {
    images.push(await writeImageBlobs(dir, { tag, layers, platform, seed: `${seed}/${platformName(platform)}` }));
  }
  const index = canonicalJson({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.imageIndex,
    manifests: images.map((image) => ({
      mediaType: MEDIA_TYPES.imageManifest,
      digest: image.manifestDigest,
      size: image.manifestSize,
      platform: image.platform,
    })),
  });
  const indexDigest = await writeBlob(dir, index);
  await tagInLayout(dir, tag, { mediaType: MEDIA_TYPES.imageIndex, digest: indexDigest, size: index.length });
  return { indexDigest, index, images };
}

export function platformName(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
}

async function writeImageBlobs(dir: string, spec: ImageSpec): Promise<WrittenImage> {
  const platform = spec.platform ?? { os: 'linux', architecture: 'amd64' };
  const layers: Array<WrittenLayer & { mediaType: string }> = [];
  for (const [index, layerSpec] of spec.layers.entries()) {
    layers.push(await writeLayerBlob(dir, spec.seed, index, layerSpec));
  }
  const config = canonicalJson({
    created: FIXED_CREATED,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['/bin/sh'],
      Labels: { 'org.example.test-seed': spec.seed },
    },
    rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.diffId) },
    history: layers.map((_, index) => ({ created: FIXED_CREATED, created_by: `generated layer ${index}` })),
  });
  const configDigest = await writeBlob(dir, config);
  const manifest = canonicalJson({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.imageManifest,
    config: { mediaType: MEDIA_TYPES.imageConfig, digest: configDigest, size: config.length },
    layers: layers.map((layer) => ({ mediaType: layer.mediaType, digest: layer.digest, size: layer.size })),
  });
  const manifestDigest = await writeBlob(dir, manifest);
  return {
    manifestDigest,
    manifest,
    manifestSize: manifest.length,
    configDigest,
    layerDigests: layers.map((layer) => layer.digest),
    diffIds: layers.map((layer) => layer.diffId),
    files: layers.flatMap((layer) => layer.files),
    platform,
  };
}

/**
 * Each layer holds a small text file naming its seed plus one pseudo-random
 * file of about `sizeBytes`, so that layers neither compress away nor collide.
 */
async function writeLayerBlob(dir: string, imageSeed: string, index: number, spec: LayerSpec): Promise<WrittenLayer & { mediaType: string }> {
  const seed = `${imageSeed}/layer/${index}`;
  const seedText = `${seed}\n`;
  const entries: TarEntry[] = [
    { path: `layer-${index}/seed.txt`, size: Buffer.byteLength(seedText), content: () => bytesOf(seedText) },
    { path: `layer-${index}/random.bin`, size: spec.sizeBytes, content: () => pseudoRandomBytes(seed, spec.sizeBytes) },
  ];
  const compression = spec.compression ?? 'gzip';
  const temporary = join(dir, 'blobs', 'sha256', `.tmp-${randomUUID()}`);
  const written = await writeTarLayer(temporary, entries, compression);
  await rename(temporary, blobPath(dir, written.digest));
  return { ...written, mediaType: compression === 'gzip' ? MEDIA_TYPES.layerGzip : MEDIA_TYPES.layerTar };
}

async function initLayout(dir: string): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), canonicalJson({ imageLayoutVersion: '1.0.0' }));
  try {
    await readFile(join(dir, 'index.json'));
  } catch {
    await writeFile(join(dir, 'index.json'), canonicalJson({ schemaVersion: 2, mediaType: MEDIA_TYPES.imageIndex, manifests: [] }));
  }
}

/** Points `tag` at `descriptor` in index.json, replacing whatever the tag named before. */
async function tagInLayout(dir: string, tag: string, descriptor: Descriptor): Promise<void> {
  const index = await readLayoutIndex(dir);
  const others = index.manifests.filter((entry) => entry.annotations?.[REF_NAME_ANNOTATION] !== tag);
  const tagged = { ...descriptor, annotations: { [REF_NAME_ANNOTATION]: tag } };
  await writeFile(join(dir, 'index.json'), canonicalJson({ ...index, manifests: [...others, tagged] }));
}

async function writeBlob(dir: string, bytes: Buffer): Promise<string> {
  const digest = `sha256:${sha256Of(bytes)}`;
  await writeFile(blobPath(dir, digest), bytes);
  return digest;
}

// ---------------------------------------------------------------------------
// Reading layouts back (for comparing what a client pulled with what was generated)
// ---------------------------------------------------------------------------

export interface LayoutIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
}

export function blobPath(dir: string, digest: string): string {
  const [algorithm, hex] = digest.split(':');
  if (!algorithm || !hex) throw new Error(`not a digest: ${digest}`);
  return join(dir, 'blobs', algorithm, hex);
}

export async function readLayoutIndex(dir: string): Promise<LayoutIndex> {
  return JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as LayoutIndex;
}

/** The descriptor index.json holds for `tag`, or an error naming the tags that are there. */
export async function taggedDescriptor(dir: string, tag: string): Promise<Descriptor> {
  const index = await readLayoutIndex(dir);
  const found = index.manifests.find((entry) => entry.annotations?.[REF_NAME_ANNOTATION] === tag);
  if (!found) {
    const tags = index.manifests.map((entry) => entry.annotations?.[REF_NAME_ANNOTATION]);
    throw new Error(`tag ${tag} not in ${dir}/index.json (tags: ${tags.join(', ')})`);
  }
  return found;
}

/** Digests of all blobs in a layout, sorted. */
export async function listBlobDigests(dir: string): Promise<string[]> {
  const names = await readdir(join(dir, 'blobs', 'sha256'));
  return names
    .filter((name) => /^[0-9a-f]{64}$/.test(name))
    .map((hex) => `sha256:${hex}`)
    .sort();
}

export async function readBlob(dir: string, digest: string): Promise<Buffer> {
  return readFile(blobPath(dir, digest));
}

/** sha256 digest of a blob file as stored, streamed so big layers are fine. */
export async function digestOfFile(path: string): Promise<string> {
  return `sha256:${await digestOfStream(createReadStream(path))}`;
}

/** sha256 digest of a gzip-compressed blob's uncompressed content: a layer's diff_id. */
export async function diffIdOfGzipFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), createGunzip(), hashingSink(hash));
  return `sha256:${hash.digest('hex')}`;
}

// ---------------------------------------------------------------------------

/**
 * JSON without insignificant whitespace, in the key order given: the bytes are
 * what gets hashed, so they must be stable.
 */
function canonicalJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function sha256Of(bytes: Buffer | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function digestOfStream(source: AsyncIterable<Buffer>): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of source) hash.update(chunk);
  return hash.digest('hex');
}

function hashingSink(hash: ReturnType<typeof createHash>): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback();
    },
  });
}
