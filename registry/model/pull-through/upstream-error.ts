/**
 * What went wrong asking an upstream, as the pull-through services act on it. The message names
 * the upstream and the status, never a URL's query, a token or a credential.
 */
export type UpstreamErrorKind =
  /** 404: the upstream has no such manifest or blob (or, behind 401/403 after auth, hides it). */
  | 'notFound'
  /** 401/403 after authenticating: the credentials are wrong or not enough. */
  | 'refused'
  /** Network error, timeout, 5xx, or the circuit breaker open. */
  | 'unavailable'
  /** 429: the upstream's rate limit. */
  | 'tooManyRequests'
  /** The bytes do not hash to the digest they were asked for. */
  | 'corrupt';

export class UpstreamError extends Error {
  readonly retryAfterSeconds?: number;
  /** The upstream's HTTP status, when it answered. */
  readonly status?: number;

  constructor(
    readonly kind: UpstreamErrorKind,
    readonly upstream: string,
    message: string,
    options: { retryAfterSeconds?: number; status?: number } = {},
  ) {
    super(message);
    this.name = 'UpstreamError';
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.status = options.status;
  }
}
