import { RegistryError, type ErrorCode } from '../../model/oci/errors.js';
import type { UpstreamError } from '../../model/pull-through/upstream-error.js';

/**
 * What a client is told when the upstream could not give what it asked for and nothing cached
 * answers instead: the upstream's 404 is a 404 (`unknown`: MANIFEST_UNKNOWN or BLOB_UNKNOWN), a
 * refusal of the credentials reads as one too (Docker Hub hides repositories behind 401), its
 * 429 is a 429 with its Retry-After, wrong bytes are 502 DIGEST_INVALID, anything else 503.
 */
export function upstreamRefusal(
  error: UpstreamError,
  unknown: Extract<ErrorCode, 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN'>,
  detail: Record<string, unknown>,
): RegistryError {
  const about = { ...detail, upstream: error.upstream };
  switch (error.kind) {
    case 'notFound':
      return new RegistryError(unknown, `${error.message}`, { detail: about });
    case 'refused':
      return new RegistryError(unknown, `${error.message} (upstream refused)`, { detail: about });
    case 'tooManyRequests':
      return new RegistryError('TOOMANYREQUESTS', `${error.message}; retry later`, {
        detail: about,
        retryAfterSeconds: error.retryAfterSeconds ?? 60,
      });
    case 'corrupt':
      return new RegistryError('DIGEST_INVALID', `${error.message}; nothing was cached`, { detail: about, refusal: 'upstreamCorrupt' });
    default:
      return new RegistryError('UNAVAILABLE', `${error.message}, and nothing is cached for this`, { detail: about, retryAfterSeconds: 5 });
  }
}
