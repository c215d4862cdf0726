/**
 * The error codes of the OCI Distribution Spec v1.1 and the HTTP status each one is
 * answered with. Every failure a client can see is a RegistryError, so that the body is
 * always `{"errors":[{code,message,detail}]}`. Code below the API layer says what happened
 * (a code, a refusal kind, facts such as a retry delay); the statuses are the spec's, kept in
 * these two tables, and the headers are written in one place (api/error-response.ts).
 */
export const ERROR_STATUS = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  /** Not in the spec; distribution's code for a backend that is down (503). */
  UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/**
 * Refusals whose status is not their code's usual one, named for what happened rather than by
 * a number: the statuses the spec gives these cases are kept here, beside the code table.
 */
export const REFUSAL_STATUS = {
  /** A chunk or range that does not continue the upload where it stands (416 with its Range). */
  outOfOrder: 416,
  /** The item changed under the request, which may simply be sent again. */
  changed: 409,
  /** More tags in one push than the registry takes. */
  tooManyTags: 414,
  /** A request body over the limit. */
  tooLarge: 413,
  /** A push naming something that must exist (an index's child): the push is refused, not a lookup. */
  badReference: 400,
  /** A query parameter, form field or path the API cannot take. */
  badRequest: 400,
  /** No endpoint answers the path at all. */
  noEndpoint: 404,
  /** A push or delete in a pull-through cache repository (docs/pull-through.md): DENIED, naming the upstream. */
  readOnlyCache: 403,
  /** A pull-through upstream served bytes that do not match their digest: a bad gateway, not a bad request. */
  upstreamCorrupt: 502,
} as const;

export type Refusal = keyof typeof REFUSAL_STATUS;

/** What a refusal says besides its code: facts, which the API edge turns into headers. */
export interface RegistryErrorOptions {
  detail?: unknown;
  /** Set when the code's usual status does not fit (REFUSAL_STATUS). */
  refusal?: Refusal;
  /** How long the client should wait before it tries again (Retry-After). */
  retryAfterSeconds?: number;
  /** With `outOfOrder`: how many bytes the upload holds, so the client can resume (Range). */
  uploadReceived?: number;
  /** The methods the path takes (Allow), for a method it does not. */
  allowedMethods?: readonly string[];
  /** The Docker token challenge (WWW-Authenticate) of an unauthorized request. */
  bearerChallenge?: string;
}

export class RegistryError extends Error {
  readonly detail: unknown;
  readonly refusal?: Refusal;
  readonly retryAfterSeconds?: number;
  readonly uploadReceived?: number;
  readonly allowedMethods?: readonly string[];
  readonly bearerChallenge?: string;

  constructor(
    readonly code: ErrorCode,
    message: string,
    options: RegistryErrorOptions = {},
  ) {
    super(message);
    this.name = 'RegistryError';
    this.detail = options.detail;
    this.refusal = options.refusal;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.uploadReceived = options.uploadReceived;
    this.allowedMethods = options.allowedMethods;
    this.bearerChallenge = options.bearerChallenge;
  }

  /** The HTTP status the spec gives this refusal. */
  get status(): number {
    return this.refusal ? REFUSAL_STATUS[this.refusal] : ERROR_STATUS[this.code];
  }

  /** The error body the spec prescribes: `{"errors":[{code,message,detail}]}`. */
  toDocument(): { errors: Record<string, unknown>[] } {
    const entry: Record<string, unknown> = { code: this.code, message: this.message };
    if (this.detail !== undefined) entry.detail = this.detail;
    return { errors: [entry] };
  }

  toBody(): string {
    return JSON.stringify(this.toDocument());
  }
}
