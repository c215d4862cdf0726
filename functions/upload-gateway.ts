import { once } from 'node:events';
import { realpathSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { configFromEnv } from './commons/config.js';
import { createAwsClients } from './commons/storage/aws-clients.js';
import { createServices, type RegistryServices } from './commons/services.js';
import { createRegistry, type RegistryHandler } from './commons/registry.js';
import { jsonLogger, type Logger } from './commons/logger.js';
import { createNodeServer } from './commons/http/node-server.js';
import { jsonResponse } from './commons/http/responses.js';
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
 *   PORT                           default 8080; HOST default 0.0.0.0
 */

/**
 * ALB's longest idle timeout is 4000 s; the target must keep idle connections open longer than
 * the load balancer does, or the ALB may reuse a connection the server is closing (a 502).
 */
export const KEEP_ALIVE_TIMEOUT_MS = 4_100_000;

/** The gateway as a function from request to response: health check, then the registry's handlers. */
export function createUploadGatewayHandler(services: RegistryServices, logger: Logger, registryUrl: string): RegistryHandler {
  const gateway = services.config.uploadGateway;
  if (!gateway) throw new Error('the upload gateway needs UPLOAD_GATEWAY_URL and a ticket secret');
  const registry = createRegistry(services, logger, new TicketAuthorizer(ticketsFor(gateway), registryUrl));
  return async (request) => {
    if (request.path === '/healthz' && (request.method === 'GET' || request.method === 'HEAD')) {
      return jsonResponse(200, { status: 'ok' }, { 'Cache-Control': 'no-store' });
    }
    const response = await registry(request);
    // A finished upload answers the blob's path: the blob is served by the registry, not here.
    const location = response.headers.Location;
    if (location?.startsWith('/')) response.headers.Location = `${registryUrl}${location}`;
    return response;
  };
}

/** Long-lived connections for multi-GB bodies: no request timeout (node-server.ts), long keep-alive. */
export function createUploadGatewayServer(handler: RegistryHandler, logger: Logger): Server {
  const server = createNodeServer(handler, logger);
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  // Node wants the header timeout above the keep-alive timeout on reused connections.
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1000;
  return server;
}

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<Server> {
  const logger = jsonLogger();
  const config = await withUploadTicketSecret(configFromEnv(env));
  const registryUrl = env.PUBLIC_BASE_URL?.replace(/\/+$/, '');
  if (!registryUrl) throw new Error('PUBLIC_BASE_URL (the registry the gateway works for) is not set');
  const handler = createUploadGatewayHandler(createServices(config, createAwsClients(config)), logger, registryUrl);
  const server = createUploadGatewayServer(handler, logger);
  server.listen(Number(env.PORT ?? 8080), env.HOST ?? '0.0.0.0');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  logger.info('upload gateway listening', { port, gateway: config.uploadGateway?.url, registry: registryUrl });

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
