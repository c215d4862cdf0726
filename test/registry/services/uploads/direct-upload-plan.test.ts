import { describe, expect, it } from 'vitest';
import {
  DEFAULT_DIRECT_PART_SIZE,
  MAX_DIRECT_PART_SIZE,
  MAX_DIRECT_PARTS,
  MAX_DIRECT_SIZE,
  MIN_DIRECT_PART_SIZE,
  parsePartNumbers,
  planParts,
  plannedPart,
} from '../../../../registry/services/uploads/direct-upload-plan.js';
import { RegistryError } from '../../../../registry/model/oci/errors.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function codeOf(action: () => unknown): string | undefined {
  try {
    action();
  } catch (error) {
    return error instanceof RegistryError ? error.code : 'not a RegistryError';
  }
  return undefined;
}

describe('the part plan of a direct upload', () => {
  it('uses the requested part size, or 32 MiB', () => {
    expect(planParts(GiB)).toEqual({ size: GiB, partSize: DEFAULT_DIRECT_PART_SIZE, partCount: 32 });
    expect(planParts(GiB, 64 * MiB)).toEqual({ size: GiB, partSize: 64 * MiB, partCount: 16 });
    expect(planParts(GiB + 1, 64 * MiB).partCount).toBe(17);
  });

  it('never plans parts under 5 MiB, S3 minimum, whatever is asked', () => {
    expect(planParts(100 * MiB, 1).partSize).toBe(MIN_DIRECT_PART_SIZE);
    expect(planParts(100 * MiB, 4 * MiB)).toEqual({ size: 100 * MiB, partSize: 5 * MiB, partCount: 20 });
  });

  it('a blob smaller than a part is one part of its own size', () => {
    const plan = planParts(1234);
    expect(plan.partCount).toBe(1);
    expect(plannedPart(plan, 1)).toEqual({ partNumber: 1, offset: 0, size: 1234 });
  });

  it('raises the part size (to whole MiB) so that the blob fits in 10,000 parts', () => {
    const size = 200 * GiB + 7;
    const plan = planParts(size, 5 * MiB);
    expect(plan.partCount).toBeLessThanOrEqual(MAX_DIRECT_PARTS);
    expect(plan.partSize % MiB).toBe(0);
    expect(plan.partSize).toBe(21 * MiB);
    // Exactly 10,000 parts of the minimum fits; one byte more does not.
    expect(planParts(MAX_DIRECT_PARTS * 5 * MiB, 5 * MiB)).toMatchObject({ partSize: 5 * MiB, partCount: MAX_DIRECT_PARTS });
    expect(planParts(MAX_DIRECT_PARTS * 5 * MiB + 1, 5 * MiB)).toMatchObject({ partSize: 6 * MiB });
  });

  it('the largest object S3 takes fits in 10,000 parts of at most 5 GiB', () => {
    const plan = planParts(MAX_DIRECT_SIZE, MAX_DIRECT_PART_SIZE * 2);
    expect(plan.partSize).toBe(MAX_DIRECT_PART_SIZE);
    expect(plan.partCount).toBe(1024);
    const fitted = planParts(MAX_DIRECT_SIZE);
    expect(fitted.partCount).toBeLessThanOrEqual(MAX_DIRECT_PARTS);
    expect(fitted.partSize).toBeLessThanOrEqual(MAX_DIRECT_PART_SIZE);
  });

  it('refuses sizes S3 cannot take, and nonsense part sizes', () => {
    expect(codeOf(() => planParts(0))).toBe('SIZE_INVALID');
    expect(codeOf(() => planParts(-5))).toBe('SIZE_INVALID');
    expect(codeOf(() => planParts(1.5))).toBe('SIZE_INVALID');
    expect(codeOf(() => planParts(MAX_DIRECT_SIZE + 1))).toBe('SIZE_INVALID');
    expect(codeOf(() => planParts(MiB, 0))).toBe('SIZE_INVALID');
  });

  it('parts cover the blob exactly, the last one short', () => {
    const plan = planParts(100 * MiB + 3, 32 * MiB);
    const parts = Array.from({ length: plan.partCount }, (_, index) => plannedPart(plan, index + 1));
    expect(parts.map((part) => part.size)).toEqual([32 * MiB, 32 * MiB, 32 * MiB, 4 * MiB + 3]);
    expect(parts.map((part) => part.offset)).toEqual([0, 32 * MiB, 64 * MiB, 96 * MiB]);
    expect(codeOf(() => plannedPart(plan, 0))).toBe('BLOB_UPLOAD_INVALID');
    expect(codeOf(() => plannedPart(plan, 5))).toBe('BLOB_UPLOAD_INVALID');
  });

  it('reads lists of part numbers and ranges, within the plan and a limit', () => {
    const plan = planParts(GiB, 5 * MiB); // 205 parts
    expect(parsePartNumbers('3', plan, 1000)).toEqual([3]);
    expect(parsePartNumbers('5-7, 1,6', plan, 1000)).toEqual([1, 5, 6, 7]);
    expect(parsePartNumbers('1-205', plan, 1000)).toHaveLength(205);
    expect(codeOf(() => parsePartNumbers('1-206', plan, 1000))).toBe('BLOB_UPLOAD_INVALID');
    expect(codeOf(() => parsePartNumbers('0', plan, 1000))).toBe('BLOB_UPLOAD_INVALID');
    expect(codeOf(() => parsePartNumbers('7-5', plan, 1000))).toBe('BLOB_UPLOAD_INVALID');
    expect(codeOf(() => parsePartNumbers('a', plan, 1000))).toBe('BLOB_UPLOAD_INVALID');
    expect(codeOf(() => parsePartNumbers('1-11', plan, 10))).toBe('BLOB_UPLOAD_INVALID');
  });
});
