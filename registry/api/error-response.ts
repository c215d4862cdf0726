import type { RegistryRequest, RegistryResponse } from '../model/http.js';
import { RegistryError } from '../model/oci/errors.js';
import { ContendedError, isThrottling } from '../storage/dynamo-errors.js';
import type { Logger } from '../support/logger.js';
import { uploadRange } from '../model/oci/upload-range.js';
import { jsonResponse } from './responses.js';

/**
 * The one mapping from what went wrong to what a client sees, for the registry, the token
 * endpoint and the upload gateway alike: an OCI error body with its status and headers;
 * "slow down" from DynamoDB or S3 and contention that outlasted its retries as 429 with
 * Retry-After; anything else as a bare 500, logged with what `describe` tells of the error
 * (the token endpoint's tells only its name: messages there may quote credentials).
 */
export function errorResponse(
  error: unknown,
  request: Pick<RegistryRequest, 'method' | 'path'>,
  logger: Logger,
  describe: (error: unknown) => Record<string, unknown> = fully,
): RegistryResponse {
  const known = asRegistryError(error);
  if (!known) {
    logger.error('request failed', { method: request.method, path: request.path, error: describe(error) });
    return jsonResponse(500, { errors: [{ code: 'UNKNOWN', message: 'internal error' }] });
  }
  if (known.code === 'TOOMANYREQUESTS') logger.warn('throttled', { method: request.method, path: request.path });
  // A dependency that cannot be reached (a user pool, say): worth an error line of its own.
  else if (known.status >= 500) logger.error('request failed', { method: request.method, path: request.path, error: known.message });
  return jsonResponse(known.status, known.toDocument(), headersOf(known));
}

/** The headers that carry what a refusal says besides its body. */
export function headersOf(error: RegistryError): Record<string, string> {
  const headers: Record<string, string> = {};
  if (error.retryAfterSeconds !== undefined) headers['Retry-After'] = String(error.retryAfterSeconds);
  if (error.uploadReceived !== undefined) headers.Range = uploadRange(error.uploadReceived);
  if (error.allowedMethods) headers.Allow = error.allowedMethods.join(', ');
  if (error.bearerChallenge) headers['WWW-Authenticate'] = `Bearer ${error.bearerChallenge}`;
  return headers;
}

function asRegistryError(error: unknown): RegistryError | undefined {
  if (error instanceof RegistryError) return error;
  if (error instanceof ContendedError) {
    return new RegistryError('TOOMANYREQUESTS', `${error.what} is being changed by other requests; retry shortly`, {
      retryAfterSeconds: 1,
    });
  }
  if (isThrottling(error)) {
    return new RegistryError('TOOMANYREQUESTS', 'the storage backend is busy; retry shortly', { retryAfterSeconds: 1 });
  }
  return undefined;
}

function fully(error: unknown): Record<string, unknown> {
  if (error instanceof Error) return { name: error.name, message: error.message, stack: error.stack };
  return { value: String(error) };
}

/** An error's name only. */
export function byName(error: unknown): Record<string, unknown> {
  return { name: error instanceof Error ? error.name : typeof error };
}
