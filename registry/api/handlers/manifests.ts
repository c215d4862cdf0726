import { RegistryError } from '../../model/oci/errors.js';
import { assertReference, assertTag, parseDigest, parseReference } from '../../model/oci/grammar.js';
import { MAX_MANIFEST_BYTES, parseManifest } from '../../model/oci/manifest.js';
import { emptyResponse } from '../responses.js';
import { readBoundedBody } from '../request-body.js';
import type { RegistryResponse } from '../../model/http.js';
import {
  ChildManifestGoneError,
  ProtectedManifestError,
  TagConflictError,
  UnlinkedMeanwhileError,
  type StoredManifest,
} from '../../storage/manifest-store.js';
import { ContendedError } from '../../storage/dynamo-errors.js';
import { findImmutableRule, immutableImageDenied, immutableRuleFor, immutableTagDenied } from '../../model/policies/immutability.js';
import { BlobGoneError } from '../../storage/blob-index.js';
import type { Endpoint, EndpointContext } from './context.js';

/**
 * Tags one push may set with `?tag=`: each is a write in the manifest's transaction (which holds
 * 100 items), and a longer list is refused with 414 as the spec allows.
 */
export const MAX_TAGS_PER_PUSH = 20;

/** A push checks its blobs again this often when blob deletes keep racing it. */
const PUSH_ATTEMPTS = 3;

function manifestUnknown(reference: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown to registry', { detail: { reference } });
}

async function findManifest({ params, services }: EndpointContext): Promise<StoredManifest> {
  // A reference that is neither a tag nor a digest names no manifest (as registry:2 answers).
  const reference = parseReference(params.reference);
  if (!reference) throw manifestUnknown(params.reference);
  const resolved = reference.digest ?? (await services.manifests.resolveTag(params.name, reference.tag!));
  const manifest = resolved ? await services.manifests.getManifest(params.name, resolved) : undefined;
  if (!manifest) throw manifestUnknown(params.reference);
  return manifest;
}

function blobUnknown(digest: string): RegistryError {
  return new RegistryError('MANIFEST_BLOB_UNKNOWN', 'manifest references a blob unknown to this repository', { detail: { digest } });
}

/** A push is refused, not a lookup: 400 rather than MANIFEST_UNKNOWN's usual 404. */
function childUnknown(digest: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', 'index references a manifest unknown to this repository', { status: 400, detail: { digest } });
}

function manifestHeaders(manifest: StoredManifest): Record<string, string> {
  return {
    'Content-Type': manifest.mediaType,
    'Content-Length': String(manifest.size),
    'Docker-Content-Digest': manifest.digest,
    ETag: `"${manifest.digest}"`,
  };
}

/** end-3 GET: the exact bytes pushed, with the media type they were pushed as. */
export const getManifest: Endpoint = async (context): Promise<RegistryResponse> => {
  const manifest = await findManifest(context);
  return { status: 200, headers: manifestHeaders(manifest), body: manifest.bytes };
};

export const headManifest: Endpoint = async (context) => {
  const manifest = await findManifest(context);
  return { status: 200, headers: manifestHeaders(manifest) };
};

/**
 * end-7: validates the manifest against what the repository holds, then stores it and moves
 * its tags in one transaction: the tag in the path, or the `?tag=` parameters of a push by
 * digest (each checked against immutable-tag rules on its own; one refused refuses all).
 */
export const putManifest: Endpoint = async ({ params, request, services }) => {
  const reference = assertReference(params.reference);
  const tags = [...new Set([...(reference.tag ? [reference.tag] : []), ...request.query.getAll('tag').map(assertTag)])];
  if (tags.length > MAX_TAGS_PER_PUSH) {
    throw new RegistryError('UNSUPPORTED', `at most ${MAX_TAGS_PER_PUSH} tags may be pushed at once`, { status: 414, detail: { tags: tags.length } });
  }
  const bytes = await readBoundedBody(request.body, request.headers['content-length'], MAX_MANIFEST_BYTES, 'MANIFEST_INVALID');
  const pushedByDigest = reference.digest;
  const manifest = parseManifest(bytes, request.headers['content-type'], pushedByDigest ? parseDigest(pushedByDigest)!.algorithm : 'sha256');
  if (pushedByDigest && pushedByDigest !== manifest.digest) {
    throw new RegistryError('DIGEST_INVALID', 'manifest digest does not match the reference', {
      detail: { reference: pushedByDigest, digest: manifest.digest },
    });
  }
  // Immutable tag rules are read on every tagged push (docs/policies.md), alongside the references.
  const immutableRules = tags.length > 0 ? services.policies.immutableRules() : Promise.resolve([]);
  immutableRules.catch(() => undefined);
  for (let attempt = 1; ; attempt++) {
    // Before the blobs are read: a blob delete since then fails the push (docs/storage.md).
    const unlinks = services.manifests.knownUnlinks(params.name);
    const [linked, present] = await Promise.all([
      services.blobs.linkedAmong(params.name, manifest.blobDigests),
      services.manifests.existingAmong(params.name, manifest.childDigests),
    ]);
    const missingBlob = manifest.blobDigests.find((digest) => !linked.has(digest));
    if (missingBlob) throw blobUnknown(missingBlob);
    const missingChild = manifest.childDigests.find((digest) => !present.has(digest));
    if (missingChild) throw childUnknown(missingChild);
    const rules = await immutableRules;
    const immutable = new Map(
      tags.flatMap((name) => {
        const rule = immutableRuleFor(rules, params.name, name);
        return rule ? [[name, rule] as const] : [];
      }),
    );
    try {
      // A rule's check is its tag write's condition, so of racing pushes only one can win; the
      // blobs' liveness is the condition of their references in the same transaction.
      await services.manifests.putManifest(params.name, { ...manifest, bytes }, tags, {
        immutableTags: new Set(immutable.keys()),
        blobs: [...linked.values()],
        unlinks,
      });
      break;
    } catch (error) {
      if (error instanceof TagConflictError && immutable.has(error.tag)) {
        throw immutableTagDenied(params.name, error.tag, immutable.get(error.tag)!, 'overwrite');
      }
      if (error instanceof ChildManifestGoneError) throw childUnknown(error.digest);
      if (error instanceof BlobGoneError) throw blobUnknown(error.digest);
      // A blob delete raced the push: check the blobs again.
      if (!(error instanceof UnlinkedMeanwhileError)) throw error;
      if (attempt === PUSH_ATTEMPTS) throw new ContendedError(`the blobs of ${params.name}`);
    }
  }
  const headers: Record<string, string> = {
    Location: `/v2/${params.name}/manifests/${manifest.digest}`,
    'Docker-Content-Digest': manifest.digest,
  };
  if (manifest.subject) headers['OCI-Subject'] = manifest.subject;
  // One header per tag and one header listing them are the same to HTTP (tags hold no commas);
  // API Gateway's payload 2.0 joins repeated headers this way anyway.
  if (request.query.has('tag')) headers['OCI-Tag'] = tags.join(', ');
  return emptyResponse(201, headers);
};

/**
 * end-9: by digest, the manifest and its tags go; by tag, only the tag. Immutable tags are
 * refused either way: by tag, and by digest when an immutable tag names the manifest or an
 * index that lists it (deleting a platform's manifest would break the multi-arch image).
 */
export const deleteManifest: Endpoint = async ({ params, services }) => {
  const reference = parseReference(params.reference);
  if (!reference) throw manifestUnknown(params.reference);
  const { tag, digest } = reference;
  let deleted: boolean;
  if (digest) {
    const rules = await services.policies.immutableRules();
    try {
      deleted = await services.manifests.deleteManifest(params.name, digest, {
        protectedTag: (name) => immutableRuleFor(rules, params.name, name) !== undefined,
      });
    } catch (error) {
      if (!(error instanceof ProtectedManifestError)) throw error;
      const rule = immutableRuleFor(rules, params.name, error.tag)!;
      throw error.via
        ? immutableImageDenied(params.name, error.tag, rule, { manifest: digest, index: error.via })
        : immutableTagDenied(params.name, error.tag, rule, 'delete');
    }
  } else {
    const rule = await findImmutableRule(services.policies, params.name, tag!);
    if (rule) {
      if (!(await services.manifests.resolveTag(params.name, tag!))) throw manifestUnknown(params.reference);
      throw immutableTagDenied(params.name, tag!, rule, 'delete');
    }
    deleted = await services.manifests.deleteTag(params.name, tag!);
  }
  if (!deleted) throw manifestUnknown(params.reference);
  return emptyResponse(202);
};
