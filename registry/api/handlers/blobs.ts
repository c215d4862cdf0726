import { RegistryError } from '../../model/oci/errors.js';
import { emptyResponse } from '../responses.js';
import type { BlobRecord } from '../../storage/blob-index.js';
import { BlobInUseError } from '../../storage/manifest-store.js';
import type { Endpoint, EndpointContext } from './context.js';

/**
 * The blob from its link, one read. `eventual` for GET, which pulls send for blobs they know
 * exist: eventually consistent, strongly on a miss (docs/storage.md, "Consistency"). HEAD is
 * what pushers ask before uploading, where a miss is common: one strong read answers it.
 */
async function linkedBlob({ params, services }: EndpointContext, eventual: boolean): Promise<BlobRecord | undefined> {
  return (
    (await services.blobs.getLink(params.name, params.digest, { eventual })) ??
    (await services.directUploadRecording.recordPending(params.name, params.digest))
  );
}

function unknownBlob(digest: string): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest } });
}

/**
 * end-2 HEAD: answered from metadata, no redirect. In a cache repository a miss asks the
 * upstream (pull-through/blob-copy.ts), caching nothing.
 */
export const headBlob: Endpoint = async (context) => {
  const { cache, params, services } = context;
  const blob = (await linkedBlob(context, false)) ?? (cache ? await services.pullThrough.blobs.head(cache, params.name, params.digest) : undefined);
  if (!blob) throw unknownBlob(params.digest);
  return emptyResponse(200, {
    'Content-Length': String(blob.size),
    'Content-Type': 'application/octet-stream',
    'Docker-Content-Digest': blob.digest,
  });
};

/**
 * end-2 GET: a 307 to a short-lived presigned S3 URL; the bytes never pass through here. In a
 * cache repository a miss is a first pull: a 307 to the upstream's own redirect (copied in the
 * background), or to S3 once the blob is copied (pull-through/blob-copy.ts).
 */
export const getBlob: Endpoint = async (context) => {
  const { cache, params, services } = context;
  let blob = await linkedBlob(context, true);
  if (!blob && cache) {
    const pulled = await services.pullThrough.blobs.get(cache, params.name, params.digest);
    if (pulled.kind === 'redirect') return emptyResponse(307, { Location: pulled.location, 'Docker-Content-Digest': params.digest });
    blob = pulled.blob;
  }
  if (!blob) throw unknownBlob(params.digest);
  return {
    ...emptyResponse(307, {
      Location: await context.services.blobReads.presignRead(blob.objectKey),
      'Docker-Content-Digest': blob.digest,
    }),
    bytesRedirected: blob.size,
  };
};

/**
 * end-10: unlinks the blob from this repository only; other repositories keep it. A blob that
 * a manifest of the repository references stays: unlinking it would make that image
 * unpullable (docs/storage.md). Delete the manifest first.
 */
export const deleteBlob: Endpoint = async ({ params, services }) => {
  let unlinked: boolean;
  try {
    unlinked = await services.manifests.unlinkBlob(params.name, params.digest);
  } catch (error) {
    if (!(error instanceof BlobInUseError)) throw error;
    throw new RegistryError('DENIED', `blob ${error.digest} is used by manifest ${error.manifest} of ${params.name}; delete that manifest first`, {
      detail: { digest: error.digest, manifest: error.manifest },
    });
  }
  if (!unlinked) throw unknownBlob(params.digest);
  return emptyResponse(202, { 'Docker-Content-Digest': params.digest });
};
