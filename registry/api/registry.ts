import { RegistryError } from '../model/oci/errors.js';
import { route } from './router.js';
import { openAccess, type Authorizer } from '../services/auth/authorizer.js';
import { ContendedError, isThrottling } from '../storage/dynamo-errors.js';
import type { RegistryHandler, RegistryRequest, RegistryResponse } from '../model/http.js';
import type { Logger } from '../support/logger.js';
import type { RegistryServices } from '../services/services.js';
import { recordRequest } from './telemetry.js';
import { ClientAbort } from '../model/client-abort.js';

/** Every response says which API it speaks, as registry:2 does and `docker login` checks. */
const API_VERSION_HEADER = { 'Docker-Distribution-API-Version': 'registry/2.0' };

/** The whole registry as one function from request to response, with no knowledge of transport. */
export function createRegistry(services: RegistryServices, logger: Logger, authorizer: Authorizer = openAccess): RegistryHandler {
  return async (request) => {
    const started = performance.now();
    let response: RegistryResponse;
    let operation = 'unrouted';
    let aborted = false;
    try {
      const { endpoint, params, requirement } = route(request.method, request.path);
      operation = endpoint.name;
      if (services.config.replica && request.method !== 'GET' && request.method !== 'HEAD') {
        throw new RegistryError('UNSUPPORTED', `this is a read-only replica: push to ${services.config.replica.primaryBaseUrl}`, {
          detail: { primary: services.config.replica.primaryBaseUrl },
        });
      }
      const caller = await authorizer.authorize(request, requirement);
      response = await endpoint({ request, params, services, caller });
    } catch (error) {
      aborted = error instanceof ClientAbort;
      response = error instanceof ClientAbort ? abortResponse(error) : errorResponse(error, request, logger);
    }
    response.headers = { ...API_VERSION_HEADER, ...response.headers };
    recordRequest(logger, {
      requestId: request.requestId,
      operation,
      method: request.method,
      path: request.path,
      status: response.status,
      durationMs: Math.round(performance.now() - started),
      bytesRedirected: response.bytesRedirected,
      ...(aborted ? { outcome: 'aborted' as const } : {}),
    });
    return response;
  };
}

function errorResponse(error: unknown, request: RegistryRequest, logger: Logger): RegistryResponse {
  const known = asRegistryError(error);
  if (!known) {
    logger.error('request failed', { method: request.method, path: request.path, error: describe(error) });
    const body = JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'internal error' }] });
    return { status: 500, headers: { 'Content-Type': 'application/json', 'Content-Length': String(body.length) }, body };
  }
  if (known.code === 'TOOMANYREQUESTS') logger.warn('throttled', { method: request.method, path: request.path });
  const body = known.toBody();
  return {
    status: known.status,
    headers: { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), ...known.headers },
    body,
  };
}

/** The client stopped sending: 408 if it still listens (it closes the connection), else nothing reaches it. */
function abortResponse(abort: ClientAbort): RegistryResponse {
  const body = new RegistryError('BLOB_UPLOAD_INVALID', abort.message, { detail: { reason: abort.reason } }).toBody();
  return {
    status: abort.status,
    headers: { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), Connection: 'close' },
    body,
  };
}

function asRegistryError(error: unknown): RegistryError | undefined {
  if (error instanceof RegistryError) return error;
  if (error instanceof ContendedError) {
    return new RegistryError('TOOMANYREQUESTS', `${error.what} is being changed by other requests; retry shortly`, {
      headers: { 'Retry-After': '1' },
    });
  }
  if (isThrottling(error)) {
    return new RegistryError('TOOMANYREQUESTS', 'the storage backend is busy; retry shortly', { headers: { 'Retry-After': '1' } });
  }
  return undefined;
}

function describe(error: unknown): Record<string, unknown> {
  if (error instanceof Error) return { name: error.name, message: error.message, stack: error.stack };
  return { value: String(error) };
}
