import { RegistryError } from '../../model/oci/errors.js';

const MiB = 1024 * 1024;

/** S3's smallest part (all but the last). */
export const MIN_DIRECT_PART_SIZE = 5 * MiB;
/** S3's largest part. */
export const MAX_DIRECT_PART_SIZE = 5 * 1024 * MiB;
/** S3's most parts in one multipart upload. */
export const MAX_DIRECT_PARTS = 10_000;
/** S3's largest object. */
export const MAX_DIRECT_SIZE = 5 * 1024 * 1024 * MiB;
/** When the client names no part size. */
export const DEFAULT_DIRECT_PART_SIZE = 32 * MiB;

/** How a direct upload of `size` bytes is cut into parts: every part `partSize` bytes but the last. */
export interface PartPlan {
  size: number;
  partSize: number;
  partCount: number;
}

export interface PlannedPart {
  partNumber: number;
  /** Where the part starts in the blob. */
  offset: number;
  size: number;
}

/**
 * The part size for a blob: the client's wish (or the default), at least S3's 5 MiB, at most
 * 5 GiB, and large enough that the blob fits in 10,000 parts (rounded up to whole MiB).
 */
export function planParts(size: number, requestedPartSize?: number): PartPlan {
  if (!Number.isSafeInteger(size) || size < 1 || size > MAX_DIRECT_SIZE) {
    throw new RegistryError('SIZE_INVALID', `a direct upload takes 1 to ${MAX_DIRECT_SIZE} bytes`, { detail: { size } });
  }
  let partSize = requestedPartSize ?? DEFAULT_DIRECT_PART_SIZE;
  if (!Number.isSafeInteger(partSize) || partSize < 1) {
    throw new RegistryError('SIZE_INVALID', 'the part size must be a positive number of bytes', { detail: { partSize: requestedPartSize } });
  }
  const smallestFitting = Math.ceil(Math.ceil(size / MAX_DIRECT_PARTS) / MiB) * MiB;
  partSize = Math.min(MAX_DIRECT_PART_SIZE, Math.max(partSize, MIN_DIRECT_PART_SIZE, smallestFitting));
  return { size, partSize, partCount: Math.ceil(size / partSize) };
}

export function plannedPart(plan: PartPlan, partNumber: number): PlannedPart {
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > plan.partCount) {
    throw new RegistryError('BLOB_UPLOAD_INVALID', `part numbers of this upload run from 1 to ${plan.partCount}`, { detail: { partNumber } });
  }
  const offset = (partNumber - 1) * plan.partSize;
  return { partNumber, offset, size: Math.min(plan.partSize, plan.size - offset) };
}

/**
 * Part numbers from a list such as `1-100,205,300-310`; at most `limit` of them, each within the
 * plan, in ascending order without repeats.
 */
export function parsePartNumbers(value: string, plan: PartPlan, limit: number): number[] {
  const numbers = new Set<number>();
  for (const item of value.split(',')) {
    const match = /^\s*(\d+)(?:\s*-\s*(\d+))?\s*$/.exec(item);
    if (!match)
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'parts must be a list of part numbers and ranges, e.g. 1-100,205', { detail: { parts: value } });
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    if (last < first) throw new RegistryError('BLOB_UPLOAD_INVALID', 'a part range ends before it starts', { detail: { parts: item } });
    plannedPart(plan, first);
    plannedPart(plan, last);
    if (numbers.size + (last - first + 1) > limit) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', `at most ${limit} part URLs per request`, { detail: { limit } });
    }
    for (let partNumber = first; partNumber <= last; partNumber++) numbers.add(partNumber);
  }
  return [...numbers].sort((a, b) => a - b);
}
