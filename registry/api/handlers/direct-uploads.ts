import { RegistryError } from '../../model/oci/errors.js';
import { readBoundedBody } from '../request-body.js';
import { jsonResponse } from '../responses.js';
import type { RegistryRequest } from '../../model/http.js';
import type { DirectStatus, PartUrls } from '../../services/uploads/direct-upload-service.js';
import { MAX_DIRECT_PARTS } from '../../services/uploads/direct-upload-plan.js';
import type { Endpoint } from './context.js';

/**
 * The direct-upload extension (docs/direct-push.md), under an upload session:
 *
 * - `POST   /v2/<name>/blobs/uploads/<uuid>/direct?digest=&size=[&partSize=][&expires=]` part plan + first URLs
 * - `GET    /v2/<name>/blobs/uploads/<uuid>/direct/parts?parts=1-100[&expires=]`      fresh part URLs
 * - `PUT    /v2/<name>/blobs/uploads/<uuid>/direct` `{"parts":[{"partNumber","etag"}]}` complete, start proving
 * - `GET    /v2/<name>/blobs/uploads/<uuid>/direct`                                    status; one more proof step
 *
 * Every one needs push on the repository (router.ts) and a session of that repository.
 */

/** One ETag entry is about 60 bytes of JSON: 10,000 of them fit well under Lambda's payload. */
const MAX_COMPLETE_BODY = 2 * 1024 * 1024;

function directPath(name: string, uuid: string): string {
  return `/v2/${name}/blobs/uploads/${uuid}/direct`;
}

function integerParameter(request: RegistryRequest, name: string, required: true): number;
function integerParameter(request: RegistryRequest, name: string, required?: false): number | undefined;
function integerParameter(request: RegistryRequest, name: string, required = false): number | undefined {
  const raw = request.query.get(name);
  if (raw === null) {
    if (required) throw new RegistryError(name === 'size' ? 'SIZE_INVALID' : 'BLOB_UPLOAD_INVALID', `?${name}= is required`);
    return undefined;
  }
  if (!/^\d{1,16}$/.test(raw))
    throw new RegistryError(name === 'size' ? 'SIZE_INVALID' : 'BLOB_UPLOAD_INVALID', `?${name}= must be a whole number`, {
      detail: { [name]: raw },
    });
  return Number(raw);
}

function urlsBody(urls: PartUrls) {
  return { expiresAt: new Date(urls.expiresAt).toISOString(), parts: urls.parts };
}

/** POST .../direct: starts the multipart upload and answers the part plan with the first URLs. */
export const startDirectUpload: Endpoint = async ({ params, request, services }) => {
  const digest = request.query.get('digest');
  if (digest === null) throw new RegistryError('DIGEST_INVALID', '?digest= is required');
  const { session, plan, urls } = await services.directUploads.start(params.name, params.uuid, {
    digest,
    size: integerParameter(request, 'size', true),
    partSize: integerParameter(request, 'partSize'),
    urlSeconds: integerParameter(request, 'expires'),
  });
  const location = directPath(params.name, session.id);
  return jsonResponse(
    200,
    {
      uuid: session.id,
      digest,
      size: plan.size,
      partSize: plan.partSize,
      partCount: plan.partCount,
      location,
      partsLocation: `${location}/parts`,
      ...urlsBody(urls),
    },
    { Location: location, 'Docker-Upload-UUID': session.id, 'Cache-Control': 'no-store' },
  );
};

/** GET .../direct/parts?parts=1-100: fresh URLs for some parts. */
export const directPartUrls: Endpoint = async ({ params, request, services }) => {
  const parts = request.query.get('parts');
  if (!parts) throw new RegistryError('BLOB_UPLOAD_INVALID', '?parts= is required, e.g. ?parts=1-100,205');
  const urls = await services.directUploads.partUrls(params.name, params.uuid, parts, integerParameter(request, 'expires'));
  return jsonResponse(200, urlsBody(urls), { 'Cache-Control': 'no-store' });
};

/** PUT .../direct with the parts' ETags: completes the object and starts proving its digest. */
export const completeDirectUpload: Endpoint = async ({ params, request, services }) => {
  const startedAt = Date.now();
  const body = await readBoundedBody(request.body, request.headers['content-length'], MAX_COMPLETE_BODY, 'BLOB_UPLOAD_INVALID');
  const etags = parseCompletion(body);
  const status = await services.directUploads.complete(params.name, params.uuid, etags, startedAt);
  return statusResponse(params.name, params.uuid, status);
};

/** GET .../direct: the upload's state; while verifying, each request proves the next range. */
export const pollDirectUpload: Endpoint = async ({ params, services }) => {
  const status = await services.directUploads.poll(params.name, params.uuid, Date.now());
  return statusResponse(params.name, params.uuid, status);
};

function statusResponse(name: string, uuid: string, status: DirectStatus) {
  switch (status.state) {
    case 'done':
      return jsonResponse(
        201,
        { status: 'complete', digest: status.blob.digest, size: status.blob.size },
        { Location: `/v2/${name}/blobs/${status.blob.digest}`, 'Docker-Content-Digest': status.blob.digest },
      );
    case 'verifying':
      return jsonResponse(
        202,
        { status: 'verifying', digest: status.digest, verified: status.verified, size: status.size },
        // No progress means another request holds the session: come back in a second.
        { Location: directPath(name, uuid), 'Retry-After': status.progressed ? '0' : '1', 'Cache-Control': 'no-store' },
      );
    case 'parts':
      return jsonResponse(
        200,
        { status: 'parts', digest: status.digest, ...status.plan, partsLocation: `${directPath(name, uuid)}/parts` },
        { Location: directPath(name, uuid), 'Cache-Control': 'no-store' },
      );
  }
}

/** `{"parts":[{"partNumber":1,"etag":"\"…\""},…]}`: every part once; answered as ETags in part order. */
function parseCompletion(body: Uint8Array): string[] {
  const invalid = (message: string) => new RegistryError('BLOB_UPLOAD_INVALID', message);
  let document: unknown;
  try {
    document = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch {
    throw invalid('the body must be JSON: {"parts":[{"partNumber":1,"etag":"…"},…]}');
  }
  const parts = (document as { parts?: unknown } | null)?.parts;
  if (!Array.isArray(parts) || parts.length === 0 || parts.length > MAX_DIRECT_PARTS)
    throw invalid('parts must be a list of 1 to 10000 {partNumber, etag}');
  const etags: string[] = new Array(parts.length);
  for (const part of parts as Array<{ partNumber?: unknown; etag?: unknown }>) {
    const { partNumber, etag } = part ?? {};
    if (
      typeof partNumber !== 'number' ||
      !Number.isInteger(partNumber) ||
      partNumber < 1 ||
      partNumber > parts.length ||
      etags[partNumber - 1] !== undefined
    ) {
      throw invalid('part numbers must run from 1 to the number of parts, each once');
    }
    if (typeof etag !== 'string' || etag.length === 0 || etag.length > 1024) throw invalid(`part ${partNumber} needs its ETag`);
    etags[partNumber - 1] = etag;
  }
  return etags;
}
