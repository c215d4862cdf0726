import type { CloudFrontHeaders, CloudFrontRequest, CloudFrontResponse, CloudFrontResponseEvent, CloudFrontResultResponse } from 'aws-lambda';
import { RegistryError } from '../../registry/model/oci/errors.js';
import { errorResponse } from '../../registry/api/error-response.js';
import type { RegistryResponse } from '../../registry/model/http.js';
import { jsonLogger } from '../../registry/support/logger.js';
import { DIRECT_UPLOAD_PREFIX } from '../../registry/storage/keys.js';
import { MAX_SINGLE_PUT_BYTES } from './front-door-code.js';

/**
 * The front door's origin-response function (Lambda@Edge, on the upload behavior only;
 * docs/front-door.md). CloudFront Functions cannot answer with a body once an origin has
 * answered (a viewer-response function is not even run for a status of 400 or more), and custom
 * error responses are distribution-wide (they would replace the registry's own 400 bodies).
 *
 * - An answer of the blob bucket to a monolithic PUT that front-door.js sent there becomes what
 *   the spec says: 201 with the blob's Location and Docker-Content-Digest. S3's refusals become
 *   OCI errors: a 400 to a PUT whose checksum the function set is S3 finding other bytes than
 *   the digest names (BadDigest; the body is not visible here, the status is).
 * - API Gateway's bare answers to a body over its limits (413, or a failed integration's 500
 *   when Lambda refuses the event), which the registry never sees, become an OCI error that
 *   names the limit and the ways out.
 * - Every other answer passes unchanged.
 */

/** About what API Gateway and Lambda take per request (docs/upload-gateway.md): "about 4.4 MiB". */
export const API_BODY_LIMIT_BYTES = 4 * 1024 * 1024;

const logger = jsonLogger();

export async function handler(event: CloudFrontResponseEvent): Promise<CloudFrontResultResponse> {
  const { request, response } = event.Records[0]!.cf;
  const direct = directUploadOf(request.uri);
  if (direct) return fromBucket(request, response, direct.digest);
  return fromRegistry(request, response);
}

function directUploadOf(uri: string): { digest: string; session: string } | undefined {
  const match = new RegExp(`^/${DIRECT_UPLOAD_PREFIX}sha256/([0-9a-f]{64})/([0-9a-f-]{36})$`).exec(uri);
  return match ? { digest: `sha256:${match[1]}`, session: match[2]! } : undefined;
}

function fromBucket(request: CloudFrontRequest, response: CloudFrontResponse, digest: string): CloudFrontResultResponse {
  const status = Number(response.status);
  if (status >= 200 && status < 300) {
    const name = headerOf(request.headers, 'x-amz-meta-registry-repository');
    return toEdge(
      {
        status: 201,
        headers: {
          'Content-Length': '0',
          ...(name ? { Location: `/v2/${name}/blobs/${digest}` } : {}),
          'Docker-Content-Digest': digest,
        },
      },
      response,
    );
  }
  const size = Number(headerOf(request.headers, 'content-length') ?? 0);
  let refusal: RegistryError;
  if (status === 400 && size > MAX_SINGLE_PUT_BYTES) {
    refusal = new RegistryError('SIZE_INVALID', `a single PUT takes at most ${MAX_SINGLE_PUT_BYTES} bytes: send the blob in PATCH chunks`, {
      detail: { size, limit: MAX_SINGLE_PUT_BYTES },
    });
  } else if (status === 400) {
    refusal = new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content: the storage computed another SHA-256', {
      detail: { digest },
    });
  } else if (status === 503) {
    refusal = new RegistryError('TOOMANYREQUESTS', 'the storage is busy; retry shortly', { retryAfterSeconds: 1 });
  } else {
    logger.error('direct upload refused by the bucket', { status, digest });
    refusal = new RegistryError('UNAVAILABLE', `the blob storage refused the upload (status ${status}); push again, or report it to the operator`, {
      detail: { status },
    });
  }
  return toEdge(errorResponse(refusal, { method: request.method, path: request.uri }, logger), response);
}

function fromRegistry(request: CloudFrontRequest, response: CloudFrontResponse): CloudFrontResultResponse {
  const status = Number(response.status);
  const method = request.method;
  if (method !== 'PATCH' && method !== 'PUT' && method !== 'POST') return response;
  const length = headerOf(request.headers, 'content-length');
  const size = length === undefined ? undefined : Number(length);
  // The registry's own answers carry its API version header; API Gateway's bare ones do not.
  const bare = headerOf(response.headers, 'docker-distribution-api-version') === undefined;
  const overLimit = size === undefined ? headerOf(request.headers, 'transfer-encoding') !== undefined : size > API_BODY_LIMIT_BYTES;
  if (!bare || !(status === 413 || (status === 500 && overLimit))) return response;
  const body = size === undefined ? 'this streamed body' : `this body of ${size} bytes`;
  const refusal = new RegistryError(
    'SIZE_INVALID',
    `${body} is over what the registry's API takes in one request (about 4.4 MiB: the API Gateway and Lambda limits). ` +
      'Ways out: enable the upload gateway (docs/upload-gateway.md), or push with a client that sends each blob in one PUT ' +
      '(docker buildx, containerd/nerdctl, oras) or with `npm run push` (docs/direct-push.md)',
    { refusal: 'tooLarge', detail: { limit: 'about 4.4 MiB per request', ...(size === undefined ? {} : { size }) } },
  );
  return toEdge(errorResponse(refusal, { method, path: request.uri }, logger), response);
}

/** A registry answer as Lambda@Edge returns it; none of the origin's headers are kept. */
function toEdge(answer: RegistryResponse, original: CloudFrontResponse): CloudFrontResultResponse {
  const headers: CloudFrontHeaders = {};
  const date = original.headers.date;
  if (date) headers.date = date;
  for (const [key, value] of Object.entries({ 'Docker-Distribution-API-Version': 'registry/2.0', ...answer.headers })) {
    headers[key.toLowerCase()] = [{ key, value }];
  }
  return {
    status: String(answer.status),
    statusDescription: STATUS_TEXT[answer.status] ?? '',
    headers,
    ...(answer.body === undefined ? {} : { body: typeof answer.body === 'string' ? answer.body : Buffer.from(answer.body).toString('utf8') }),
  };
}

const STATUS_TEXT: Record<number, string> = {
  201: 'Created',
  400: 'Bad Request',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
};

function headerOf(headers: CloudFrontHeaders, name: string): string | undefined {
  return headers[name]?.[0]?.value;
}
