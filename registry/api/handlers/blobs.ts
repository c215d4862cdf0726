import { RegistryError } from '../../model/oci/errors.js';
import { emptyResponse } from '../responses.js';
import type { BlobRecord } from '../../storage/blob-index.js';
import { BlobInUseError } from '../../storage/manifest-store.js';
import type { Endpoint, EndpointContext } from './context.js';

async function linkedBlob({ params, services }: EndpointContext): Promise<BlobRecord> {
  const blob =
    (await services.blobs.getLink(params.name, params.digest)) ?? (await services.directUploadRecording.recordPending(params.name, params.digest));
  if (!blob) throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest: params.digest } });
  return blob;
}

/** end-2 HEAD: answered from metadata, no redirect. */
export const headBlob: Endpoint = async (context) => {
  const blob = await linkedBlob(context);
  return emptyResponse(200, {
    'Content-Length': String(blob.size),
    'Content-Type': 'application/octet-stream',
    'Docker-Content-Digest': blob.digest,
  });
};

/** end-2 GET: a 307 to a short-lived presigned S3 URL; the bytes never pass through here. */
export const getBlob: Endpoint = async (context) => {
  const blob = await linkedBlob(context);
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
  if (!unlinked) {
    throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest: params.digest } });
  }
  return emptyResponse(202, { 'Docker-Content-Digest': params.digest });
};
