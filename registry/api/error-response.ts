import type { RegistryRequest, RegistryResponse } from '../model/http.js';
import { RegistryError } from '../model/oci/errors.js';
import { ContendedError, isThrottling } from '../storage/dynamo-errors.js';
import type { Logger } from '../support/logger.js';

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
    return registryErrorResponse(500, JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'internal error' }] }));
  }
  if (known.code === 'TOOMANYREQUESTS') logger.warn('throttled', { method: request.method, path: request.path });
  // A dependency that cannot be reached (a user pool, say): worth an error line of its own.
  else if (known.status >= 500) logger.error('request failed', { method: request.method, path: request.path, error: known.message });
  return registryErrorResponse(known.status, known.toBody(), headersOf(known));
}

/** The headers that carry what a refusal says besides its body. */
export function headersOf(error: RegistryError): Record<string, string> {
  const headers: Record<string, string> = {};
  if (error.retryAfterSeconds !== undefined) headers['Retry-After'] = String(error.retryAfterSeconds);
  if (error.uploadReceived !== undefined) headers.Range = `0-${Math.max(error.uploadReceived - 1, 0)}`;
  if (error.allowedMethods) headers.Allow = error.allowedMethods.join(', ');
  if (error.bearerChallenge) headers['WWW-Authenticate'] = `Bearer ${error.bearerChallenge}`;
  return headers;
}

function registryErrorResponse(status: number, body: string, headers: Record<string, string> = {}): RegistryResponse {
  return { status, headers: { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), ...headers }, body };
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
