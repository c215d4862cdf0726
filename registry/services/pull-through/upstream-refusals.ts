import { RegistryError, type ErrorCode } from '../../model/oci/errors.js';
import type { UpstreamError } from '../../model/pull-through/upstream-error.js';

/**
 * What a client is told when the upstream of a cache repository failed and nothing cached can
 * stand in: 404 as the content's own unknown code (also when the upstream refused the
 * credentials: registries hide private content that way), 503 UNAVAILABLE naming the upstream,
 * 429 with the upstream's Retry-After, 502 DIGEST_INVALID for wrong bytes.
 */
export function refusalOfUpstreamError(error: UpstreamError, subject: { unknown: ErrorCode; what: string }): RegistryError {
  const detail = { upstream: error.upstream, reference: subject.what };
  switch (error.kind) {
    case 'notFound':
      return new RegistryError(subject.unknown, `${subject.what} is unknown to upstream ${error.upstream}`, { detail });
    case 'refused':
      return new RegistryError(subject.unknown, `upstream ${error.upstream} refused: ${subject.what} does not exist there or needs credentials`, {
        detail,
      });
    case 'tooManyRequests':
      return new RegistryError('TOOMANYREQUESTS', `upstream ${error.upstream} is rate limiting; retry later`, {
        detail,
        retryAfterSeconds: error.retryAfterSeconds ?? 5,
      });
    case 'corrupt':
      return new RegistryError('DIGEST_INVALID', `upstream ${error.upstream} served wrong bytes for ${subject.what}; nothing was cached`, {
        detail,
        refusal: 'upstreamCorrupt',
      });
    default:
      return new RegistryError('UNAVAILABLE', `upstream ${error.upstream} is unavailable and ${subject.what} is not cached; retry later`, {
        detail,
        retryAfterSeconds: 5,
      });
  }
}
