import { RegistryError } from './errors.js';

/** Repository names: the grammar of the OCI Distribution Spec, multi-level namespaces allowed. */
const NAME = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** Docker's limit on the full name; keeps DynamoDB keys and S3 keys well inside their limits. */
const MAX_NAME_LENGTH = 255;

const DIGEST_HEX_LENGTH = { sha256: 64, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof DIGEST_HEX_LENGTH;
export const DIGEST_ALGORITHMS = Object.keys(DIGEST_HEX_LENGTH) as DigestAlgorithm[];

export function isValidName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME.test(name);
}

export function assertName(name: string): string {
  if (!isValidName(name)) {
    throw new RegistryError('NAME_INVALID', 'invalid repository name', { detail: { name } });
  }
  return name;
}

export function isTag(reference: string): boolean {
  return TAG.test(reference);
}

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

/** Parses `algorithm:hex`; answers undefined for anything that is not a supported digest. */
export function parseDigest(value: string): ParsedDigest | undefined {
  const colon = value.indexOf(':');
  if (colon < 0) return undefined;
  const algorithm = value.slice(0, colon);
  const hex = value.slice(colon + 1);
  if (!(algorithm in DIGEST_HEX_LENGTH)) return undefined;
  const length = DIGEST_HEX_LENGTH[algorithm as DigestAlgorithm];
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) return undefined;
  return { algorithm: algorithm as DigestAlgorithm, hex };
}

export function isDigest(value: string): boolean {
  return parseDigest(value) !== undefined;
}

export function assertDigest(value: string | null | undefined): string {
  if (!value || !isDigest(value)) {
    throw new RegistryError('DIGEST_INVALID', 'invalid or unsupported digest', { detail: { digest: value ?? null } });
  }
  return value;
}

/** A manifest reference is a tag or a digest; undefined for anything else, which names no manifest. */
export function parseReference(reference: string): { tag?: string; digest?: string } | undefined {
  if (isTag(reference)) return { tag: reference };
  if (isDigest(reference)) return { digest: reference };
  return undefined;
}

/**
 * The reference of a push: a tag, or a digest (a reference with a colon is one, so a bad one is
 * DIGEST_INVALID); anything else is refused before storage is touched.
 */
export function assertReference(reference: string): { tag?: string; digest?: string } {
  if (isTag(reference)) return { tag: reference };
  if (reference.includes(':')) return { digest: assertDigest(reference) };
  return { tag: assertTag(reference) };
}

/** A tag to push to, refused before storage is touched when it breaks the grammar. */
export function assertTag(tag: string): string {
  if (!isTag(tag)) {
    throw new RegistryError('MANIFEST_INVALID', 'invalid tag: tags match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}', { detail: { tag: tag.slice(0, 256) } });
  }
  return tag;
}
