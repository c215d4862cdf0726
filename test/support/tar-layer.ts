/**
 * Streams a deterministic tar layer to disk without holding it in memory.
 *
 * The tar is written by hand (ustar headers are 512-byte records) so that the
 * bytes depend only on the seed: no library default such as the current time or
 * the local user name can leak in and change a digest between runs.
 */
import { createCipheriv, createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, createGzip } from 'node:zlib';

const BLOCK = 512;
const CHUNK = 1024 * 1024;
/** A fixed mtime keeps the tar bytes independent of when they were generated. */
const FIXED_MTIME_SECONDS = 1_700_000_000;

export type LayerCompression = 'gzip' | 'none';

/** One regular file inside a generated layer, with what a reader should find. */
export interface LayerFile {
  /** Path inside the image root, without a leading slash. */
  path: string;
  size: number;
  sha256: string;
}

export interface TarEntry {
  path: string;
  size: number;
  /** Yields exactly `size` bytes. */
  content: () => AsyncIterable<Buffer>;
}

export interface WrittenLayer {
  /** Digest of the bytes on disk: what a registry and a manifest know the layer by. */
  digest: string;
  size: number;
  /** Digest of the uncompressed tar: the image config's rootfs.diff_ids entry. */
  diffId: string;
  files: LayerFile[];
}

/**
 * Yields `size` pseudo-random bytes derived from `seed`: an AES-128-CTR key
 * stream, which is fast, incompressible and reproducible.
 */
export async function* pseudoRandomBytes(seed: string, size: number): AsyncIterable<Buffer> {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(CHUNK);
  for (let remaining = size; remaining > 0; remaining -= CHUNK) {
    yield cipher.update(remaining >= CHUNK ? zeros : zeros.subarray(0, remaining));
  }
}

export async function* bytesOf(content: string | Buffer): AsyncIterable<Buffer> {
  yield Buffer.from(content);
}

/**
 * Writes `entries` as a tar archive to `path`, optionally gzip-compressed,
 * hashing both the uncompressed tar and the bytes on disk as they stream by.
 */
export async function writeTarLayer(path: string, entries: TarEntry[], compression: LayerCompression): Promise<WrittenLayer> {
  const files: LayerFile[] = [];
  const uncompressed = new HashingPassThrough();
  const onDisk = new HashingPassThrough();
  const stages: NodeJS.ReadWriteStream[] = [uncompressed];
  if (compression === 'gzip') stages.push(createGzip({ level: zlibConstants.Z_BEST_SPEED }));
  stages.push(onDisk);
  await pipeline(Readable.from(tarStream(entries, files)), ...(stages as [Transform]), createWriteStream(path));
  return { digest: onDisk.digest(), size: onDisk.bytes, diffId: uncompressed.digest(), files };
}

/** Yields the tar bytes, and records each file's content digest in `files` as it goes by. */
async function* tarStream(entries: TarEntry[], files: LayerFile[]): AsyncIterable<Buffer> {
  const directories = parentDirectories(entries.map((entry) => entry.path));
  for (const directory of directories) yield tarHeader(`${directory}/`, 0, 'directory');
  for (const entry of entries) {
    yield tarHeader(entry.path, entry.size, 'file');
    const contentHash = createHash('sha256');
    let written = 0;
    for await (const chunk of entry.content()) {
      written += chunk.length;
      contentHash.update(chunk);
      yield chunk;
    }
    if (written !== entry.size) throw new Error(`tar entry ${entry.path}: expected ${entry.size} bytes, got ${written}`);
    files.push({ path: entry.path, size: entry.size, sha256: contentHash.digest('hex') });
    const padding = (BLOCK - (entry.size % BLOCK)) % BLOCK;
    if (padding > 0) yield Buffer.alloc(padding);
  }
  // A tar archive ends with two zero-filled records.
  yield Buffer.alloc(2 * BLOCK);
}

/** Every ancestor directory of the given paths, parents first, so extractors can create them in order. */
function parentDirectories(paths: string[]): string[] {
  const directories = new Set<string>();
  for (const path of paths) {
    const parts = path.split('/').slice(0, -1);
    for (let depth = 1; depth <= parts.length; depth++) directories.add(parts.slice(0, depth).join('/'));
  }
  return [...directories].sort();
}

function tarHeader(name: string, size: number, kind: 'file' | 'directory'): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name longer than 100 bytes: ${name}`);
  const header = Buffer.alloc(BLOCK);
  header.write(name, 0, 100, 'utf8');
  writeOctal(header, kind === 'directory' ? 0o755 : 0o644, 100, 8);
  writeOctal(header, 0, 108, 8); // uid
  writeOctal(header, 0, 116, 8); // gid
  writeOctal(header, size, 124, 12);
  writeOctal(header, FIXED_MTIME_SECONDS, 136, 12);
  header.write(kind === 'directory' ? '5' : '0', 156, 1, 'ascii');
  header.write('ustar\u000000', 257, 8, 'binary');
  header.write('root', 265, 32, 'ascii'); // uname
  header.write('root', 297, 32, 'ascii'); // gname
  // The checksum is computed with its own field filled with spaces.
  header.fill(0x20, 148, 156);
  let checksum = 0;
  for (const byte of header) checksum += byte;
  header.write(`${checksum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'binary');
  return header;
}

/** Writes a NUL-terminated, zero-padded octal number into a fixed-width tar field. */
function writeOctal(header: Buffer, value: number, offset: number, width: number): void {
  const digits = value.toString(8).padStart(width - 1, '0');
  if (digits.length > width - 1) throw new Error(`value ${value} does not fit a ${width}-byte tar field`);
  header.write(`${digits}\u0000`, offset, width, 'ascii');
}

/** Passes bytes through unchanged while counting and hashing them. */
class HashingPassThrough extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}
