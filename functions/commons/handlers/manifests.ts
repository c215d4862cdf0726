import { RegistryError } from '../oci/errors.js';
import { assertReference } from '../oci/grammar.js';
import { MAX_MANIFEST_BYTES, parseManifest } from '../oci/manifest.js';
import { emptyResponse } from '../http/responses.js';
import { readBoundedBody } from '../http/request-body.js';
import type { RegistryResponse } from '../http/types.js';
import {
  ChildManifestGoneError,
  ProtectedManifestError,
  TagConflictError,
  UnlinkedMeanwhileError,
  type StoredManifest,
} from '../storage/manifest-store.js';
import { ContendedError } from '../storage/dynamo-errors.js';
import { findImmutableRule, immutableImageDenied, immutableRuleFor, immutableTagDenied } from '../policies/immutability.js';
import { BlobGoneError } from '../storage/blob-index.js';
import type { Endpoint, EndpointContext } from './context.js';

/** A push checks its blobs again this often when blob deletes keep racing it. */
const PUSH_ATTEMPTS = 3;

function manifestUnknown(reference: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown to registry', { detail: { reference } });
}

async function findManifest({ params, services }: EndpointContext): Promise<StoredManifest> {
  const { tag, digest } = assertReference(params.reference);
  const resolved = digest ?? (await services.manifests.resolveTag(params.name, tag!));
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
 * the tag in one transaction.
 */
export const putManifest: Endpoint = async ({ params, request, services }) => {
  const { tag, digest: pushedByDigest } = assertReference(params.reference);
  const bytes = await readBoundedBody(request.body, request.headers['content-length'], MAX_MANIFEST_BYTES, 'MANIFEST_INVALID');
  const manifest = parseManifest(bytes, request.headers['content-type']);
  if (pushedByDigest && pushedByDigest !== manifest.digest) {
    // A sha512 reference names the same bytes under another algorithm; only sha256 is stored.
    throw new RegistryError('DIGEST_INVALID', 'manifest digest does not match the reference', {
      detail: { reference: pushedByDigest, digest: manifest.digest },
    });
  }
  // Immutable tag rules are read on every tagged push (docs/policies.md), alongside the references.
  const immutableRule = tag ? findImmutableRule(services.policies, params.name, tag) : Promise.resolve(undefined);
  immutableRule.catch(() => undefined);
  for (let attempt = 1; ; attempt++) {
    const [linked, present] = await Promise.all([
      services.blobs.linkedAmong(params.name, manifest.blobDigests),
      services.manifests.existingAmong(params.name, manifest.childDigests),
    ]);
    const missingBlob = manifest.blobDigests.find((digest) => !linked.has(digest));
    if (missingBlob) throw blobUnknown(missingBlob);
    const missingChild = manifest.childDigests.find((digest) => !present.has(digest));
    if (missingChild) throw childUnknown(missingChild);
    const rule = await immutableRule;
    try {
      // The rule's check is the tag write's condition, so of racing pushes only one can win; the
      // blobs' liveness is the condition of their references in the same transaction.
      await services.manifests.putManifest(params.name, { ...manifest, bytes }, tag, {
        immutableTag: rule !== undefined,
        blobs: [...linked.values()],
      });
      break;
    } catch (error) {
      if (error instanceof TagConflictError && rule) throw immutableTagDenied(params.name, error.tag, rule, 'overwrite');
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
  return emptyResponse(201, headers);
};

/**
 * end-9: by digest, the manifest and its tags go; by tag, only the tag. Immutable tags are
 * refused either way: by tag, and by digest when an immutable tag names the manifest or an
 * index that lists it (deleting a platform's manifest would break the multi-arch image).
 */
export const deleteManifest: Endpoint = async ({ params, services }) => {
  const { tag, digest } = assertReference(params.reference);
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
