import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { RegistryHandler } from '../registry.js';
import type { Logger } from '../logger.js';

/**
 * The local shell around the registry: a Node HTTP server that hands the request stream to
 * the registry as it arrives, so a 1 GiB PATCH flows into S3 without being buffered.
 */
export function createNodeServer(registry: RegistryHandler, logger: Logger): Server {
  const server = createServer((request, response) => {
    serve(registry, request, response).catch((error: unknown) => {
      logger.error('response failed', { method: request.method, path: pathOf(request), error: String(error) });
      if (!response.headersSent) response.writeHead(500);
      response.end();
    });
  });
  // Multi-GB layers arrive as one request: no request timeout, but drop idle sockets.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  return server;
}

async function serve(registry: RegistryHandler, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = new URL(request.url ?? '/', 'http://registry.invalid');
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  const result = await registry({
    requestId: randomUUID(),
    method: request.method ?? 'GET',
    path: url.pathname,
    query: url.searchParams,
    headers,
    body: request,
  });
  response.writeHead(result.status, result.headers);
  if (request.method === 'HEAD' || result.body === undefined) response.end();
  else response.end(result.body);
  // An error answered before the body was read: drain it so the client sees the answer, not a reset.
  if (!request.complete) request.resume();
}

function pathOf(request: IncomingMessage): string {
  return (request.url ?? '').split('?')[0] ?? '';
}
