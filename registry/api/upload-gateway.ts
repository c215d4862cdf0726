import type { RegistryHandler } from '../model/http.js';
import { RegistryError } from '../model/oci/errors.js';
import type { Logger } from '../support/logger.js';
import type { RegistryServices } from '../services/services.js';
import { TicketAuthorizer } from '../services/auth/ticket-authorizer.js';
import { ticketsFor } from '../services/uploads/upload-tickets.js';
import { createRegistry } from './registry.js';
import { errorResponse } from './error-response.js';
import { jsonResponse } from './responses.js';
import { behindFrontDoor } from './front-door.js';

/**
 * The upload gateway (docs/upload-gateway.md): the registry's own handlers behind a streaming
 * Node HTTP server, run as a container (Fargate behind an ALB) on its own host name, only for
 * the bodies of upload sessions the registry opened. API Gateway takes at most 10 MB per request
 * and Lambda about 4.4 MiB of raw body; a stock `docker push` sends a whole layer in one PATCH.
 *
 * Environment: everything functions/registry-api.ts reads (TABLE_NAME, BUCKET_NAME, ...), plus
 *   UPLOAD_GATEWAY_URL             this gateway's public base URL (Locations it answers point here)
 *   UPLOAD_TICKET_SECRET_PARAMETER SSM SecureString parameter with the ticket secret (in AWS), or
 *   UPLOAD_TICKET_SECRET           the secret itself (local use)
 *   UPLOAD_TICKET_TTL_SECONDS      lifetime of the fresh tickets it issues (default 3600)
 *   PUBLIC_BASE_URL                the registry's public base URL, named in refusals
 *   UPLOAD_BODY_IDLE_SECONDS       drop an upload whose body sends nothing this long (default 60)
 *   UPLOAD_GATEWAY_MAX_UPLOADS     uploads in flight at once; more get 429 (default: from the memory, below)
 *   UPLOAD_GATEWAY_MEMORY_MIB      the task's memory (the stack sets it; else the cgroup limit or the host's)
 *   PORT                           default 8080; HOST default 0.0.0.0
 */

/**
 * Memory one upload in flight holds: two 16 MiB parts and the stream's buffers, 41 MiB measured,
 * with a margin. RESERVED_MIB is what the process needs besides (Node, the SDK clients).
 */
export const MIB_PER_UPLOAD = 48;
const RESERVED_MIB = 128;

/** How many uploads fit in `memoryMiB` at once: 8 in the default 512 MiB task, 18 in 1 GiB. */
export function defaultMaxUploads(memoryMiB: number): number {
  return Math.max(1, Math.floor((memoryMiB - RESERVED_MIB) / MIB_PER_UPLOAD));
}

/** Seconds a refused upload is told to wait before it tries again. */
const RETRY_AFTER_SECONDS = 5;

/** The gateway as a function from request to response: health check, then the registry's handlers. */
export function createUploadGatewayHandler(
  services: RegistryServices,
  logger: Logger,
  registryUrl: string,
  options: { maxConcurrentUploads: number },
): RegistryHandler {
  const gateway = services.config.uploadGateway;
  if (!gateway) throw new Error('the upload gateway needs UPLOAD_GATEWAY_URL and a ticket secret');
  // Behind the front door, the gateway takes only what came through it (the health check aside).
  const registry = behindFrontDoor(
    createRegistry(services, logger, new TicketAuthorizer(ticketsFor(gateway), registryUrl), { pullThrough: false }),
    services.config.frontDoor,
    logger,
  );
  const maxUploads = options.maxConcurrentUploads;
  let uploading = 0;
  return async (request) => {
    if (request.path === '/healthz' && (request.method === 'GET' || request.method === 'HEAD')) {
      return jsonResponse(200, { status: 'ok' }, { 'Cache-Control': 'no-store' });
    }
    // Requests with a body hold memory while it streams: past the cap, the task would run out.
    const carriesBody = request.method === 'PATCH' || request.method === 'PUT' || request.method === 'POST';
    if (carriesBody && uploading >= maxUploads) {
      logger.warn('upload refused: too many in flight', { method: request.method, path: request.path, uploading, maxUploads });
      const refusal = new RegistryError('TOOMANYREQUESTS', `this gateway is taking ${maxUploads} uploads at once; retry shortly`, {
        detail: { maxUploads },
        retryAfterSeconds: RETRY_AFTER_SECONDS,
      });
      return errorResponse(refusal, request, logger);
    }
    if (carriesBody) uploading += 1;
    try {
      const response = await registry(request);
      // A finished upload answers the blob's path: the blob is served by the registry, not here.
      const location = response.headers.Location;
      if (location?.startsWith('/')) response.headers.Location = `${registryUrl}${location}`;
      return response;
    } finally {
      if (carriesBody) uploading -= 1;
    }
  };
}
