import type { RegistryResponse } from '../../model/http.js';
import { RegistryError } from '../../model/oci/errors.js';
import { assertReference, assertTag, parseReference } from '../../model/oci/grammar.js';
import { MAX_MANIFEST_BYTES } from '../../model/oci/manifest.js';
import type { StoredManifest } from '../../storage/manifest-store.js';
import { readBoundedBody } from '../request-body.js';
import { emptyResponse } from '../responses.js';
import type { Endpoint, EndpointContext } from './context.js';
import type { CacheTarget } from '../../model/pull-through/upstream.js';
import type { StaleServe } from '../../services/pull-through/manifest-cache.js';

function manifestUnknown(reference: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown to registry', { detail: { reference } });
}

async function findManifest({ params, services }: EndpointContext): Promise<StoredManifest> {
  // A reference that is neither a tag nor a digest names no manifest (as registry:2 answers).
  const reference = parseReference(params.reference);
  const manifest = reference && (await services.manifestService.find(params.name, reference));
  if (!manifest) throw manifestUnknown(params.reference);
  return manifest;
}

function manifestHeaders(manifest: Omit<StoredManifest, 'bytes'>): Record<string, string> {
  return {
    'Content-Type': manifest.mediaType,
    'Content-Length': String(manifest.size),
    'Docker-Content-Digest': manifest.digest,
    ETag: `"${manifest.digest}"`,
  };
}

/**
 * In a pull-through cache repository: from the cache or the upstream (docs/pull-through.md), with
 * a `Warning` when the upstream could not confirm a cached tag. A HEAD there is answered as a GET
 * is, since a miss fetches the manifest whole either way.
 */
async function cachedManifest(context: EndpointContext, cache: CacheTarget, head: boolean): Promise<RegistryResponse> {
  const reference = parseReference(context.params.reference);
  if (!reference) throw manifestUnknown(context.params.reference);
  const { manifest, stale } = await context.services.pullThrough.manifests.find(cache, context.params.name, reference);
  const headers = manifestHeaders(manifest);
  if (stale) headers.Warning = staleWarning(context.request.headers.host, stale);
  return { status: 200, headers, ...(head ? {} : { body: manifest.bytes }) };
}

/** RFC 7234's `110 <agent> "Response is Stale"`, saying why and since when. */
function staleWarning(host: string | undefined, stale: StaleServe): string {
  const since = stale.checkedAt === undefined ? '' : `, last confirmed ${new Date(stale.checkedAt).toISOString()}`;
  const text = `stale: ${stale.reason}${since}`.replace(/["\\\r\n]/g, ' ');
  return `110 ${host?.replace(/[^\w.:[\]-]/g, '') || 'registry'} "${text}"`;
}

/** end-3 GET: the exact bytes pushed, with the media type they were pushed as. */
export const getManifest: Endpoint = async (context): Promise<RegistryResponse> => {
  if (context.cache) return cachedManifest(context, context.cache, false);
  const manifest = await findManifest(context);
  // Pull events, when on: counted in memory, written off the request path (docs/events.md).
  context.services.pullCounter?.record(context.params.name, context.params.reference);
  return { status: 200, headers: manifestHeaders(manifest), body: manifest.bytes };
};

/** HEAD: the headers of GET, from as little as answers them (by tag, the tag alone). */
export const headManifest: Endpoint = async (context) => {
  if (context.cache) return cachedManifest(context, context.cache, true);
  const { params, services } = context;
  const reference = parseReference(params.reference);
  const manifest = reference && (await services.manifestService.describe(params.name, reference));
  if (!manifest) throw manifestUnknown(params.reference);
  return { status: 200, headers: manifestHeaders(manifest) };
};

/**
 * end-7: the tag in the path, or the `?tag=` parameters of a push by digest (distribution-spec
 * 1.1.1), answered with `OCI-Tag`; the manifest service validates and stores.
 */
export const putManifest: Endpoint = async ({ params, request, services, caller, audit }) => {
  const reference = assertReference(params.reference);
  const tags = [...new Set([...(reference.tag ? [reference.tag] : []), ...request.query.getAll('tag').map(assertTag)])];
  const bytes = await readBoundedBody(request.body, request.headers['content-length'], MAX_MANIFEST_BYTES, 'MANIFEST_INVALID');
  const manifest = await services.manifestService.push(params.name, {
    bytes,
    contentType: request.headers['content-type'],
    digest: reference.digest,
    tags,
    auditWrite: audit && ((digest) => audit.write(digest)),
    pushedBy: caller.subject,
  });
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

/** end-9: by digest, the manifest and its tags; by tag, only the tag (immutable tags refused). */
export const deleteManifest: Endpoint = async ({ params, services, caller, audit }) => {
  const reference = parseReference(params.reference);
  const deleted =
    reference && (await services.manifestService.delete(params.name, reference, { deletedBy: caller.subject, auditWrite: audit?.write() }));
  if (!deleted) throw manifestUnknown(params.reference);
  return emptyResponse(202);
};
