/**
 * Finds the entries of a tar archive without extracting it: only the 512-byte headers are
 * read, so a `docker save` archive of many GB is indexed in milliseconds, and each entry can
 * later be streamed straight from its place in the archive.
 *
 * Understands ustar (with its name prefix), GNU long names and links (`L`, `K`), pax headers
 * (`x`: path, linkpath, size; `g` is skipped), base-256 sizes, and resolves symbolic and hard
 * links (old `docker save` archives link a layer seen twice to its first copy).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';

const BLOCK = 512;

export interface TarEntry {
  path: string;
  /** Where the entry's bytes start in the archive. */
  offset: number;
  size: number;
  type: 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';
  linkTarget?: string;
}

export class TarIndex {
  private constructor(
    readonly archive: string,
    private readonly entries: Map<string, TarEntry>,
  ) {}

  static async read(archive: string): Promise<TarIndex> {
    const handle = await open(archive, 'r');
    try {
      return new TarIndex(archive, await readEntries(handle));
    } finally {
      await handle.close();
    }
  }

  paths(): string[] {
    return [...this.entries.keys()];
  }

  /** The regular file at `path`, following links; undefined when there is none. */
  file(path: string): TarEntry | undefined {
    let entry = this.entries.get(normalize(path));
    for (let hops = 0; entry && hops < 16; hops++) {
      if (entry.type === 'file') return entry;
      if (entry.type === 'symlink') entry = this.entries.get(normalize(posix.join(posix.dirname(entry.path), entry.linkTarget ?? '')));
      else if (entry.type === 'hardlink') entry = this.entries.get(normalize(entry.linkTarget ?? ''));
      else return undefined;
    }
    return undefined;
  }
}

async function readEntries(handle: FileHandle): Promise<Map<string, TarEntry>> {
  const { size: archiveSize } = await handle.stat();
  const entries = new Map<string, TarEntry>();
  const header = Buffer.alloc(BLOCK);
  let offset = 0;
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Record<string, string> = {};
  while (offset + BLOCK <= archiveSize) {
    await readExactly(handle, header, offset);
    if (header.every((byte) => byte === 0)) break;
    if (!checksumMatches(header)) throw new Error(`not a tar archive, or damaged at byte ${offset}`);
    const typeFlag = String.fromCharCode(header[156]!);
    const size = pax.size !== undefined ? Number(pax.size) : numberField(header, 124, 12);
    const dataOffset = offset + BLOCK;
    offset = dataOffset + Math.ceil(size / BLOCK) * BLOCK;
    if (typeFlag === 'L' || typeFlag === 'K') {
      const text = trimNul((await readBytes(handle, dataOffset, size)).toString('utf8'));
      if (typeFlag === 'L') longName = text;
      else longLink = text;
      continue;
    }
    if (typeFlag === 'x') {
      pax = parsePax(await readBytes(handle, dataOffset, size));
      continue;
    }
    if (typeFlag === 'g') continue;
    const magic = header.subarray(257, 262).toString('latin1');
    const prefix = magic === 'ustar' ? field(header, 345, 155) : '';
    const name = pax.path ?? longName ?? (prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100));
    const linkTarget = pax.linkpath ?? longLink ?? field(header, 157, 100);
    const type =
      typeFlag === '0' || typeFlag === '\0' || typeFlag === '7'
        ? 'file'
        : typeFlag === '5'
          ? 'directory'
          : typeFlag === '2'
            ? 'symlink'
            : typeFlag === '1'
              ? 'hardlink'
              : 'other';
    const path = normalize(name);
    if (path)
      entries.set(path, {
        path,
        offset: dataOffset,
        size: type === 'file' ? size : 0,
        type,
        linkTarget: type === 'symlink' || type === 'hardlink' ? linkTarget : undefined,
      });
    longName = undefined;
    longLink = undefined;
    pax = {};
  }
  return entries;
}

function normalize(path: string): string {
  return posix
    .normalize(path.replace(/^\/+/, ''))
    .replace(/^\.\/?/, '')
    .replace(/\/+$/, '');
}

async function readExactly(handle: FileHandle, buffer: Buffer, position: number): Promise<void> {
  const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
  if (bytesRead !== buffer.length) throw new Error(`the tar archive ends inside a header at byte ${position}`);
}

async function readBytes(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  if (length > 1024 * 1024) throw new Error('a tar extended header over 1 MiB');
  const buffer = Buffer.alloc(length);
  await readExactly(handle, buffer, position);
  return buffer;
}

function field(header: Buffer, start: number, length: number): string {
  return trimNul(header.subarray(start, start + length).toString('utf8'));
}

function trimNul(text: string): string {
  const end = text.indexOf('\0');
  return end === -1 ? text : text.slice(0, end);
}

/** Octal, or GNU base-256 (high bit of the first byte set) for sizes past 8 GiB. */
function numberField(header: Buffer, start: number, length: number): number {
  if (header[start]! & 0x80) {
    let value = header[start]! & 0x7f;
    for (let index = start + 1; index < start + length; index++) value = value * 256 + header[index]!;
    return value;
  }
  const text = field(header, start, length).trim();
  return text ? parseInt(text, 8) : 0;
}

function checksumMatches(header: Buffer): boolean {
  const stored = numberField(header, 148, 8);
  let sum = 0;
  for (let index = 0; index < BLOCK; index++) sum += index >= 148 && index < 156 ? 0x20 : header[index]!;
  return sum === stored;
}

/** Records `<length> <key>=<value>\n`. */
function parsePax(data: Buffer): Record<string, string> {
  const values: Record<string, string> = {};
  let position = 0;
  while (position < data.length) {
    const space = data.indexOf(0x20, position);
    if (space === -1) break;
    const length = Number(data.subarray(position, space).toString('latin1'));
    if (!Number.isInteger(length) || length <= 0) break;
    const record = data.subarray(space + 1, position + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    if (equals > 0) values[record.slice(0, equals)] = record.slice(equals + 1);
    position += length;
  }
  return values;
}
