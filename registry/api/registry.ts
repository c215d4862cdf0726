import { RegistryError } from '../model/oci/errors.js';
import { route } from './router.js';
import { openAccess, type Authorizer } from '../services/auth/authorizer.js';
import { errorResponse } from './error-response.js';
import { jsonResponse } from './responses.js';
import type { RegistryHandler, RegistryResponse } from '../model/http.js';
import type { Logger } from '../support/logger.js';
import type { RegistryServices } from '../services/services.js';
import { recordRequest } from './telemetry.js';
import { ClientAbort } from '../model/client-abort.js';
import { AuditTrail, recordRefusedAccess } from './audit-trail.js';
import type { CacheTarget } from '../model/pull-through/upstream.js';

/** Every response says which API it speaks, as registry:2 does and `docker login` checks. */
const API_VERSION_HEADER = { 'Docker-Distribution-API-Version': 'registry/2.0' };

/** The whole registry as one function from request to response, with no knowledge of transport. */
/**
 * `pullThrough: false` (the upload gateway, which serves only sessions the registry opened)
 * takes every name as the team's own and reads no upstreams.
 */
export function createRegistry(
  services: RegistryServices,
  logger: Logger,
  authorizer: Authorizer = openAccess,
  options: { pullThrough?: boolean } = {},
): RegistryHandler {
  const resolveNames = options.pullThrough !== false;
  return async (request) => {
    const started = performance.now();
    let response: RegistryResponse;
    let operation = 'unrouted';
    let aborted = false;
    let trail: AuditTrail | undefined;
    try {
      const { endpoint, params, requirement } = route(request.method, request.path);
      operation = endpoint.name;
      if (services.config.replica && request.method !== 'GET' && request.method !== 'HEAD') {
        throw new RegistryError('UNSUPPORTED', `this is a read-only replica: push to ${services.config.replica.primaryBaseUrl}`, {
          detail: { primary: services.config.replica.primaryBaseUrl },
        });
      }
      // Pull-through names resolve to their canonical name before anything is authorized or read.
      const { name, cache } =
        resolveNames && params.name ? await services.pullThrough.names.resolve(request, params.name) : { name: params.name, cache: undefined };
      params.name = name;
      trail = AuditTrail.of(services.audit, operation, params, request);
      const required = requirement.kind === 'repository' ? { ...requirement, name } : requirement;
      const caller = await authorizer.authorize(request, required).catch(async (error: unknown) => {
        await recordRefusedAccess(services.audit, trail, error, request, params.name || undefined);
        throw error;
      });
      trail?.by(caller.subject);
      if (cache && required.kind === 'repository' && (required.action === 'push' || required.action === 'delete')) throw readOnlyCache(name, cache);
      response = await endpoint({ request, params, services, caller, audit: trail, ...(cache ? { cache } : {}) });
    } catch (error) {
      aborted = error instanceof ClientAbort;
      response = error instanceof ClientAbort ? abortResponse(error) : errorResponse(error, request, logger);
    }
    await trail?.finish(response);
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

/** Cache repositories take no pushes or deletes: their content is the upstream's. */
function readOnlyCache(name: string, { upstream }: CacheTarget): RegistryError {
  return new RegistryError(
    'DENIED',
    `${name} is a read-only cache of upstream ${upstream.name} (${upstream.url}): push to a name outside ${upstream.prefix}/`,
    {
      refusal: 'readOnlyCache',
      detail: { name, upstream: upstream.name },
    },
  );
}

/** The client stopped sending: 408 if it still listens (it closes the connection), else nothing reaches it. */
function abortResponse(abort: ClientAbort): RegistryResponse {
  const refusal = new RegistryError('BLOB_UPLOAD_INVALID', abort.message, { detail: { reason: abort.reason } });
  return jsonResponse(abort.status, refusal.toDocument(), { Connection: 'close' });
}
