import { RegistryError } from '../../model/oci/errors.js';
import { DIGEST_ALGORITHMS, assertDigest, isDigest, isValidName, type DigestAlgorithm } from '../../model/oci/grammar.js';
import { emptyResponse } from '../responses.js';
import type { BlobRecord } from '../../storage/blob-index.js';
import type { UploadSession } from '../../storage/upload-session-store.js';
import type { ChunkRange } from '../../services/uploads/upload-service.js';
import { uploadRange } from '../../model/oci/upload-range.js';
import { uploadLocation } from '../../services/uploads/upload-tickets.js';
import type { RegistryConfig } from '../../config/config.js';
import type { Endpoint, EndpointContext } from './context.js';

/** With an upload gateway, Location is an absolute URL there, with a ticket for this session. */
function sessionHeaders(config: RegistryConfig, name: string, session: UploadSession): Record<string, string> {
  return {
    Location: uploadLocation(config, name, session.id),
    Range: uploadRange(session.offset),
    'Docker-Upload-UUID': session.id,
  };
}

function blobCreated(name: string, blob: BlobRecord): ReturnType<typeof emptyResponse> {
  return emptyResponse(201, { Location: `/v2/${name}/blobs/${blob.digest}`, 'Docker-Content-Digest': blob.digest });
}

/** `Content-Range: <start>-<end>` as the spec writes it, or `bytes <start>-<end>/<total>` as HTTP does. */
function chunkRange({ request }: EndpointContext): ChunkRange | undefined {
  const header = request.headers['content-range'];
  if (header === undefined) return undefined;
  const match = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!match) throw new RegistryError('BLOB_UPLOAD_INVALID', 'malformed Content-Range', { refusal: 'outOfOrder', detail: { contentRange: header } });
  const range = { start: Number(match[1]), end: Number(match[2]) };
  if (range.end < range.start) {
    throw new RegistryError('BLOB_UPLOAD_INVALID', 'Content-Range ends before it starts', {
      refusal: 'outOfOrder',
      detail: { contentRange: header },
    });
  }
  return range;
}

/**
 * end-4a/4b/11: POST opens a session, takes a whole blob with `?digest=`, or mounts one
 * from another repository with `?mount=&from=` (falling back to a session, as the spec says).
 */
export const startUpload: Endpoint = async (context) => {
  const { params, request, services, caller } = context;
  const mount = request.query.get('mount');
  const named = request.query.get('from');
  // A pull-through cache name mounts as its canonical name (`hub/nginx` is `hub/library/nginx`).
  const from = named !== null && isValidName(named) ? await services.pullThrough.names.canonicalScopeName(named, request.entry) : named;
  if (mount !== null) {
    assertDigest(mount);
    // Mounting needs pull on `from`; knowing a digest must not be enough.
    if (from !== null && isValidName(from) && caller.holds(from, 'pull')) {
      const mounted =
        (await services.uploads.mount(params.name, from, mount)) ??
        ((await services.directUploadRecording.recordPending(from, mount)) && (await services.uploads.mount(params.name, from, mount)));
      if (mounted) return blobCreated(params.name, mounted);
    }
  }
  const digest = request.query.get('digest');
  if (digest !== null && mount === null) {
    const blob = await services.uploads.uploadWhole(params.name, request.body, assertDigest(digest));
    return blobCreated(params.name, blob);
  }
  const session = await services.uploads.open(params.name, digestAlgorithmOf(request.query.get('digest-algorithm')));
  return emptyResponse(202, sessionHeaders(services.config, params.name, session));
};

/** `?digest-algorithm=` on POST (distribution-spec 1.1.1): the algorithm the finish will name. */
function digestAlgorithmOf(value: string | null): DigestAlgorithm {
  if (value === null) return 'sha256';
  if (!(DIGEST_ALGORITHMS as readonly string[]).includes(value)) {
    throw new RegistryError('DIGEST_INVALID', `unsupported digest algorithm: use one of ${DIGEST_ALGORITHMS.join(', ')}`, {
      detail: { algorithm: value.slice(0, 64) },
    });
  }
  return value as DigestAlgorithm;
}

/** end-5: a streamed body, or one chunk with Content-Range. */
export const patchUpload: Endpoint = async (context) => {
  const { params, request, services } = context;
  const session = await services.uploads.get(params.name, params.uuid);
  const next = await services.uploads.append(session, request.body, chunkRange(context));
  return emptyResponse(202, sessionHeaders(services.config, params.name, next));
};

/** end-6: finishes the upload, optionally with its last bytes, and proves the digest. */
export const finishUpload: Endpoint = async (context) => {
  const { params, request, services } = context;
  const digest = request.query.get('digest');
  if (digest === null || !isDigest(digest)) {
    throw new RegistryError('DIGEST_INVALID', 'a valid ?digest= is required to finish an upload', { detail: { digest } });
  }
  const session = await services.uploads.get(params.name, params.uuid);
  const blob = await services.uploads.finish(session, request.body, digest, chunkRange(context));
  return blobCreated(params.name, blob);
};

/** end-13: where an upload stands. */
export const getUploadStatus: Endpoint = async ({ params, services }) => {
  const session = await services.uploads.get(params.name, params.uuid);
  return emptyResponse(204, sessionHeaders(services.config, params.name, session));
};

export const cancelUpload: Endpoint = async ({ params, services }) => {
  const session = await services.uploads.get(params.name, params.uuid);
  await services.uploads.cancel(session);
  return emptyResponse(204);
};
