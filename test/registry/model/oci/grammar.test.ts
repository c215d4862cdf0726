import { describe, expect, it } from 'vitest';
import { RegistryError } from '../../../../registry/model/oci/errors.js';
import { assertDigest, assertName, assertReference, isDigest, isTag, isValidName, parseDigest } from '../../../../registry/model/oci/grammar.js';

const hex64 = 'a'.repeat(32) + '0123456789abcdef'.repeat(2);
const hex128 = '0123456789abcdef'.repeat(8);

function registryError(action: () => unknown): RegistryError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(RegistryError);
    return error as RegistryError;
  }
  throw new Error('expected a RegistryError, nothing was thrown');
}

describe('repository names', () => {
  it.each(['a', 'library/alpine', 'team/app/api', 'a__b', 'a--b', 'a---b', 'a_b', 'a.b', 'a-b/c.d/e__f', 'x0/y1/z2'])('accepts %s', (name) => {
    expect(isValidName(name)).toBe(true);
    expect(assertName(name)).toBe(name);
  });

  it.each([
    ['uppercase', 'A'],
    ['uppercase inside', 'team/App'],
    ['leading dash', '-a'],
    ['leading dot', '.a'],
    ['leading underscore', '_a'],
    ['trailing slash', 'a/'],
    ['leading slash', '/a'],
    ['empty component', 'a//b'],
    ['double dot', 'a..b'],
    ['triple underscore', 'a___b'],
    ['trailing separator', 'a-'],
    ['colon', 'a:b'],
    ['space', 'a b'],
    ['empty', ''],
  ])('rejects %s (%j) with NAME_INVALID 400', (_label, name) => {
    expect(isValidName(name)).toBe(false);
    const error = registryError(() => assertName(name));
    expect(error.code).toBe('NAME_INVALID');
    expect(error.status).toBe(400);
    expect(JSON.parse(error.toBody())).toEqual({
      errors: [{ code: 'NAME_INVALID', message: expect.any(String), detail: { name } }],
    });
  });

  it('accepts a 255-character multi-level name and rejects 256 characters', () => {
    // 'abcdefg/' is 8 characters: 31 of them plus 'abcdefg' make 255.
    const name255 = `${'abcdefg/'.repeat(31)}abcdefg`;
    expect(name255).toHaveLength(255);
    expect(isValidName(name255)).toBe(true);
    const name256 = `${name255}h`;
    expect(name256).toHaveLength(256);
    expect(isValidName(name256)).toBe(false);
    expect(registryError(() => assertName(name256)).code).toBe('NAME_INVALID');
    expect(isValidName('a'.repeat(256))).toBe(false);
  });
});

describe('tags', () => {
  it.each(['latest', 'v1.2.3', '1.0', 'A_b-C.d', '_underscore', '0', `sha256-${hex64}`])('accepts %s', (tag) => {
    expect(isTag(tag)).toBe(true);
    expect(assertReference(tag)).toEqual({ tag });
  });

  it('accepts 128 characters and rejects 129', () => {
    expect(isTag('t'.repeat(128))).toBe(true);
    expect(isTag('t'.repeat(129))).toBe(false);
    expect(registryError(() => assertReference('t'.repeat(129))).code).toBe('MANIFEST_INVALID');
  });

  it.each([
    ['leading dot', '.hidden'],
    ['leading dash', '-v1'],
    ['empty', ''],
    ['slash', 'v1/2'],
    ['plus', 'v1+build'],
    ['space', 'v 1'],
  ])('rejects %s (%j)', (_label, tag) => {
    expect(isTag(tag)).toBe(false);
    const error = registryError(() => assertReference(tag));
    expect(error.status).toBe(400);
  });
});

describe('digests', () => {
  it('accepts sha256 with 64 lowercase hex characters', () => {
    const digest = `sha256:${hex64}`;
    expect(isDigest(digest)).toBe(true);
    expect(parseDigest(digest)).toEqual({ algorithm: 'sha256', hex: hex64 });
    expect(assertDigest(digest)).toBe(digest);
    expect(assertReference(digest)).toEqual({ digest });
  });

  it('accepts sha512 with 128 lowercase hex characters', () => {
    const digest = `sha512:${hex128}`;
    expect(parseDigest(digest)).toEqual({ algorithm: 'sha512', hex: hex128 });
    expect(assertReference(digest)).toEqual({ digest });
  });

  it.each([
    ['uppercase hex', `sha256:${hex64.toUpperCase()}`],
    ['one uppercase letter', `sha256:${`A${hex64.slice(1)}`}`],
    ['63 hex characters', `sha256:${hex64.slice(1)}`],
    ['65 hex characters', `sha256:${hex64}0`],
    ['sha512 with 64 hex characters', `sha512:${hex64}`],
    ['sha256 with 128 hex characters', `sha256:${hex128}`],
    ['md5', 'md5:d41d8cd98f00b204e9800998ecf8427e'],
    ['unknown algorithm', `sha384:${hex128.slice(0, 96)}`],
    ['uppercase algorithm', `SHA256:${hex64}`],
    ['non-hex', `sha256:${'g'.repeat(64)}`],
    ['no algorithm', hex64],
    ['empty hex', 'sha256:'],
    ['empty', ''],
    ['short junk', 'sha256:xyz'],
  ])('rejects %s with DIGEST_INVALID 400', (_label, digest) => {
    expect(isDigest(digest)).toBe(false);
    expect(parseDigest(digest)).toBeUndefined();
    const error = registryError(() => assertDigest(digest));
    expect(error.code).toBe('DIGEST_INVALID');
    expect(error.status).toBe(400);
  });

  it('treats a reference with a colon as a digest, so a bad one is DIGEST_INVALID rather than a tag', () => {
    const error = registryError(() => assertReference('sha256:xyz'));
    expect(error.code).toBe('DIGEST_INVALID');
  });

  it('refuses a missing digest', () => {
    expect(registryError(() => assertDigest(null)).code).toBe('DIGEST_INVALID');
    expect(registryError(() => assertDigest(undefined)).code).toBe('DIGEST_INVALID');
  });
});
