import { timingSafeEqual } from 'node:crypto';
import type { FrontDoorConfig } from '../config/config.js';
import type { RegistryHandler } from '../model/http.js';
import { RegistryError } from '../model/oci/errors.js';
import type { Logger } from '../support/logger.js';
import { errorResponse } from './error-response.js';

/** The header the front door's function sets on every request to a registry origin (functions/edge/front-door.js). */
export const ORIGIN_SECRET_HEADER = 'x-registry-origin-secret';
/** The viewer's address as CloudFront saw it, set by the same function: the source of login throttling. */
export const VIEWER_ADDRESS_HEADER = 'x-registry-viewer-address';
/**
 * Set to `docker-mirror` by the Docker mirror distribution's function (docs/pull-through.md):
 * the request is `RegistryRequest.entry`. Trusted only with the origin secret; the main
 * distribution's function deletes any viewer copy.
 */
export const ENTRY_HEADER = 'x-registry-entry';

/**
 * Behind the front door (docs/front-door.md), the API's own endpoint must not be a second way in
 * that skips what the front door enforces: a request without the origin secret the function
 * sets is refused (403 DENIED naming the registry's address). A request that has it came through
 * CloudFront, so the viewer address the function set is its source, and the entry it names (the
 * Docker mirror distribution's) is where it arrived. Without an origin secret
 * configured (plain `npm start`), the handler is returned as it is.
 */
export function behindFrontDoor(handler: RegistryHandler, frontDoor: FrontDoorConfig | undefined, logger: Logger): RegistryHandler {
  const secret = frontDoor?.originSecret;
  if (!frontDoor || !secret) return handler;
  const expected = Buffer.from(secret, 'utf8');
  return async (request) => {
    const presented = Buffer.from(request.headers[ORIGIN_SECRET_HEADER] ?? '', 'utf8');
    if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
      const refusal = new RegistryError('DENIED', `this endpoint is not the registry's address: use ${frontDoor.url}`, {
        detail: { registry: frontDoor.url },
      });
      const response = errorResponse(refusal, request, logger);
      return { ...response, headers: { 'Docker-Distribution-API-Version': 'registry/2.0', ...response.headers } };
    }
    const { [ORIGIN_SECRET_HEADER]: _secret, [VIEWER_ADDRESS_HEADER]: viewer, [ENTRY_HEADER]: entry, ...headers } = request.headers;
    return handler({ ...request, headers, sourceIp: viewer ?? request.sourceIp, ...(entry === 'docker-mirror' ? { entry } : {}) });
  };
}
