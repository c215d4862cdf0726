import { createHash } from 'node:crypto';
import { RegistryError } from './errors.js';
import { isDigest, type DigestAlgorithm } from './grammar.js';
import { FOREIGN_LAYER_TYPES, IMAGE_MANIFEST_TYPES, INDEX_TYPES, MediaType } from './media-types.js';

/** The spec lets registries refuse manifests over 4 MiB; we do, with 413. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * At most this many distinct blobs (config and layers) or child manifests in one manifest:
 * each is checked and referenced on push, and the list is stored in the manifest's 400 KB
 * item. Far above any image (docker stops at 127 layers) or multi-platform index.
 */
export const MAX_REFERENCED_DIGESTS = 1000;

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
}

/** What the registry needs to know about a manifest to store it and check its references. */
export interface ParsedManifest {
  mediaType: string;
  digest: string;
  size: number;
  /** Blobs that must be linked in the repository: config and layers. */
  blobDigests: string[];
  /** Manifests that must exist in the repository: an index's children. */
  childDigests: string[];
  subject?: string;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/**
 * Parses and validates manifest bytes as received. The digest is computed over exactly these
 * bytes, with the algorithm the client named (sha256 unless it pushed by a sha512 digest);
 * nothing is re-serialized. `contentType` is the request's Content-Type, which must
 * agree with the manifest's own mediaType when both are given.
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined, algorithm: DigestAlgorithm = 'sha256'): ParsedManifest {
  const document = parseJson(bytes);
  const declared = optionalString(document, 'mediaType');
  const headerType = contentType?.split(';')[0]?.trim() || undefined;
  if (declared && headerType && declared !== headerType) {
    throw invalid(`manifest mediaType "${declared}" does not match Content-Type "${headerType}"`);
  }
  const mediaType = declared ?? headerType ?? guessMediaType(document);
  if (document.schemaVersion !== 2) throw invalid('schemaVersion must be 2');
  const digest = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
  const subject = document.subject === undefined ? undefined : descriptor(document.subject, 'subject').digest;
  const artifactType = optionalString(document, 'artifactType');
  const annotations = stringMap(document.annotations);
  const base = { mediaType, digest, size: bytes.byteLength, subject, annotations };

  if (IMAGE_MANIFEST_TYPES.has(mediaType)) {
    const config = descriptor(document.config, 'config');
    const layers = descriptorList(document.layers, 'layers');
    const stored = layers.filter((layer) => !(FOREIGN_LAYER_TYPES.has(layer.mediaType) && layer.urls?.length));
    return {
      ...base,
      // An image manifest without artifactType is typed by its config (OCI 1.1 referrers rule).
      artifactType: artifactType ?? (mediaType === MediaType.ociManifest ? config.mediaType : undefined),
      blobDigests: distinctReferences([config.digest, ...stored.map((layer) => layer.digest)], 'blobs'),
      childDigests: [],
    };
  }
  if (INDEX_TYPES.has(mediaType)) {
    const children = descriptorList(document.manifests, 'manifests');
    return {
      ...base,
      artifactType,
      blobDigests: [],
      childDigests: distinctReferences(
        children.map((child) => child.digest),
        'manifests',
      ),
    };
  }
  throw invalid(`unsupported manifest media type "${mediaType}"`);
}

/** Each digest once, in first-seen order; more than MAX_REFERENCED_DIGESTS is refused. */
function distinctReferences(digests: string[], what: string): string[] {
  const distinct = [...new Set(digests)];
  if (distinct.length > MAX_REFERENCED_DIGESTS) {
    throw invalid(`manifest references ${distinct.length} distinct ${what}; this registry accepts at most ${MAX_REFERENCED_DIGESTS}`);
  }
  return distinct;
}

function guessMediaType(document: Record<string, unknown>): string {
  // OCI manifests may omit mediaType; their shape tells them apart.
  if (Array.isArray(document.manifests)) return MediaType.ociIndex;
  if (document.config !== undefined) return MediaType.ociManifest;
  throw invalid('cannot tell the manifest media type: no mediaType field and no Content-Type');
}

function parseJson(bytes: Uint8Array): Record<string, unknown> {
  let document: unknown;
  try {
    document = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw invalid('manifest is not valid JSON');
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) throw invalid('manifest must be a JSON object');
  return document as Record<string, unknown>;
}

function descriptor(value: unknown, field: string): Descriptor {
  if (typeof value !== 'object' || value === null) throw invalid(`${field} must be a descriptor`);
  const { mediaType, digest, size, urls, annotations, artifactType } = value as Record<string, unknown>;
  if (typeof mediaType !== 'string' || mediaType === '') throw invalid(`${field}.mediaType must be a string`);
  if (typeof digest !== 'string' || !isDigest(digest)) throw invalid(`${field}.digest is not a valid digest`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalid(`${field}.size must be a non-negative integer`);
  if (urls !== undefined && (!Array.isArray(urls) || urls.some((url) => typeof url !== 'string')))
    throw invalid(`${field}.urls must be an array of strings`);
  if (artifactType !== undefined && typeof artifactType !== 'string') throw invalid(`${field}.artifactType must be a string`);
  stringMap(annotations, `${field}.annotations`);
  return { mediaType, digest, size, urls: urls as string[] | undefined };
}

function descriptorList(value: unknown, field: string): Descriptor[] {
  if (!Array.isArray(value)) throw invalid(`${field} must be an array`);
  return value.map((entry, index) => descriptor(entry, `${field}[${index}]`));
}

function optionalString(document: Record<string, unknown>, field: string): string | undefined {
  const value = document[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalid(`${field} must be a string`);
  return value;
}

/** Annotations: a JSON object whose values are strings (any keys, `__proto__` included). */
function stringMap(value: unknown, field = 'annotations'): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.values(value).some((v) => typeof v !== 'string')) {
    throw invalid(`${field} must be an object mapping strings to strings`);
  }
  return value as Record<string, string>;
}

function invalid(message: string): RegistryError {
  return new RegistryError('MANIFEST_INVALID', message);
}
