import { once } from 'node:events';
import { readFileSync, realpathSync } from 'node:fs';
import { totalmem } from 'node:os';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { configFromEnv, optionalPositiveInteger } from './commons/config.js';
import { createAwsClients } from './commons/storage/aws-clients.js';
import { createServices, type RegistryServices } from './commons/services.js';
import { createRegistry, type RegistryHandler } from './commons/registry.js';
import { jsonLogger, type Logger } from './commons/logger.js';
import { createNodeServer, DEFAULT_BODY_IDLE_TIMEOUT_MS } from './commons/http/node-server.js';
import { jsonResponse } from './commons/http/responses.js';
import { RegistryError } from './commons/oci/errors.js';
import { TicketAuthorizer } from './commons/auth/ticket-authorizer.js';
import { ticketsFor, withUploadTicketSecret } from './commons/uploads/upload-tickets.js';

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
 * ALB's longest idle timeout is 4000 s; the target must keep idle connections open longer than
 * the load balancer does, or the ALB may reuse a connection the server is closing (a 502).
 */
export const KEEP_ALIVE_TIMEOUT_MS = 4_100_000;

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
  options: { maxConcurrentUploads?: number } = {},
): RegistryHandler {
  const gateway = services.config.uploadGateway;
  if (!gateway) throw new Error('the upload gateway needs UPLOAD_GATEWAY_URL and a ticket secret');
  const registry = createRegistry(services, logger, new TicketAuthorizer(ticketsFor(gateway), registryUrl));
  const maxUploads = options.maxConcurrentUploads ?? defaultMaxUploads(taskMemoryMiB(process.env));
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
      });
      return jsonResponse(429, JSON.parse(refusal.toBody()) as unknown, { 'Retry-After': String(RETRY_AFTER_SECONDS) });
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

/**
 * Long-lived connections for multi-GB bodies: no total request timeout, but a body that sends
 * nothing for `bodyIdleTimeoutMs` is dropped (node-server.ts); long keep-alive for the ALB.
 * Paths reach the handlers percent-encoded, as the ALB passes them.
 */
export function createUploadGatewayServer(handler: RegistryHandler, logger: Logger, options: { bodyIdleTimeoutMs?: number } = {}): Server {
  const server = createNodeServer(handler, logger, { bodyIdleTimeoutMs: options.bodyIdleTimeoutMs, decodePath: false });
  // Node counts the header timeout from a request's first byte, not from the end of the last
  // request, so it may stay short (60 s, node-server.ts) under a long keep-alive.
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  return server;
}

/** The task's memory: UPLOAD_GATEWAY_MEMORY_MIB, else the cgroup's limit, else the host's. */
export function taskMemoryMiB(env: NodeJS.ProcessEnv): number {
  const configured = Number(env.UPLOAD_GATEWAY_MEMORY_MIB);
  if (Number.isFinite(configured) && configured > 0) return configured;
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const limit = Number(readFileSync(file, 'utf8').trim());
      if (Number.isFinite(limit) && limit > 0 && limit < totalmem()) return Math.floor(limit / (1024 * 1024));
    } catch {
      // No such cgroup file here: try the next.
    }
  }
  return Math.floor(totalmem() / (1024 * 1024));
}

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<Server> {
  const logger = jsonLogger();
  const config = await withUploadTicketSecret(configFromEnv(env));
  const registryUrl = env.PUBLIC_BASE_URL?.replace(/\/+$/, '');
  if (!registryUrl) throw new Error('PUBLIC_BASE_URL (the registry the gateway works for) is not set');
  const maxConcurrentUploads = optionalPositiveInteger(env, 'UPLOAD_GATEWAY_MAX_UPLOADS') ?? defaultMaxUploads(taskMemoryMiB(env));
  const idleSeconds = optionalPositiveInteger(env, 'UPLOAD_BODY_IDLE_SECONDS');
  const handler = createUploadGatewayHandler(createServices(config, createAwsClients(config)), logger, registryUrl, { maxConcurrentUploads });
  const server = createUploadGatewayServer(handler, logger, {
    bodyIdleTimeoutMs: idleSeconds === undefined ? DEFAULT_BODY_IDLE_TIMEOUT_MS : idleSeconds * 1000,
  });
  server.listen(Number(env.PORT ?? 8080), env.HOST ?? '0.0.0.0');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  logger.info('upload gateway listening', { port, gateway: config.uploadGateway?.url, registry: registryUrl, maxConcurrentUploads });

  // ECS sends SIGTERM before SIGKILL: stop taking connections, let uploads in flight finish.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.info('upload gateway stopping', { signal });
      server.close(() => process.exit(0));
      server.closeIdleConnections();
    });
  }
  return server;
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
