/**
 * How the S3 stand-in keeps an object completed from several multipart parts without writing
 * its bytes a second time: the part files stay as they were uploaded, moved (renamed) into a
 * directory of their own with a manifest of their order and sizes, and the object's file in
 * s3rver's layout is a symbolic link to that manifest. Reads concatenate the parts; a range
 * reads only the parts it covers. A regular file is an ordinary object (also one completed from
 * a single part, which is renamed into place).
 *
 * The link keeps s3rver's own code working unchanged where it only needs to know that an
 * object exists (`stat` follows the link; ListObjects walks it as a file), and a rename over the
 * object's path replaces either kind atomically.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';

export interface PartsManifest {
  /** The object's size: the sum of the parts'. */
  size: number;
  /** In object order; `file` is the part's file name in the manifest's directory. */
  parts: { file: string; size: number }[];
}

const MANIFEST = 'manifest.json';

/** Read in 1 MiB chunks, not 64 KiB: a sixteenth of the reads and stream steps (syscalls are dear in these VMs). */
const READ_CHUNK_BYTES = 1024 * 1024;

/** The directory of the parts an object's path links to; undefined for a regular file or no object. */
export async function partsDirOf(objectPath: string): Promise<string | undefined> {
  try {
    return dirname(resolve(dirname(objectPath), await readlink(objectPath)));
  } catch {
    return undefined;
  }
}

/** The manifest of an object made of parts, and where its parts are; undefined otherwise. */
export async function partsOf(objectPath: string): Promise<{ dir: string; manifest: PartsManifest } | undefined> {
  const dir = await partsDirOf(objectPath);
  if (dir === undefined) return undefined;
  try {
    return { dir, manifest: JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as PartsManifest };
  } catch {
    // The object is being deleted or replaced: the link is still there, its parts no longer.
    return undefined;
  }
}

/**
 * Makes the parts in `dir` (file names in object order) the content of the object at
 * `objectPath`: writes their manifest beside them and links the object to it, replacing any
 * previous object atomically. Nothing is copied.
 */
export async function linkParts(objectPath: string, dir: string, parts: PartsManifest['parts']): Promise<void> {
  const manifest: PartsManifest = { size: parts.reduce((sum, part) => sum + part.size, 0), parts };
  await writeFile(join(dir, MANIFEST), JSON.stringify(manifest));
  await mkdir(dirname(objectPath), { recursive: true });
  const temporaryPath = `${objectPath}.${randomBytes(8).toString('hex')}.partial`;
  await symlink(relative(dirname(objectPath), join(dir, MANIFEST)), temporaryPath);
  try {
    await rename(temporaryPath, objectPath);
  } catch (error) {
    await rm(temporaryPath, { force: true });
    throw error;
  }
}

/** A copy of an object made of parts, in `dir` (new): hard links to the same part files, so no byte is copied. */
export async function linkCopyOfParts(source: { dir: string; manifest: PartsManifest }, objectPath: string, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await Promise.all(source.manifest.parts.map((part) => link(join(source.dir, part.file), join(dir, part.file))));
  await linkParts(objectPath, dir, source.manifest.parts);
}

/**
 * Runs `write`, which puts a new object (of either kind) at `objectPath`, then removes the parts
 * of the object it replaced, if that one was made of parts. (Two writers racing for one key can
 * leave the loser's parts behind: disk space only, never a wrong read.)
 */
export async function replacingParts<T>(objectPath: string, write: () => Promise<T>): Promise<T> {
  const previous = await partsDirOf(objectPath);
  const result = await write();
  if (previous !== undefined && previous !== (await partsDirOf(objectPath))) await rm(previous, { recursive: true, force: true });
  return result;
}

/** Bytes `start`..`end` (inclusive) of an object made of parts, reading only the parts the range covers. */
export async function* readParts(dir: string, manifest: PartsManifest, start: number, end: number): AsyncGenerator<Buffer> {
  let offset = 0;
  for (const part of manifest.parts) {
    const partStart = offset;
    offset += part.size;
    if (offset <= start || part.size === 0) continue;
    if (partStart > end) return;
    yield* createReadStream(join(dir, part.file), {
      start: Math.max(0, start - partStart),
      end: Math.min(part.size - 1, end - partStart),
      highWaterMark: READ_CHUNK_BYTES,
    });
  }
}
