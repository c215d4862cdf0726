import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createUploadGatewayHandler, defaultMaxUploads } from '../../registry/api/upload-gateway.js';
import { createUploadGatewayServer, taskMemoryMiB } from '../../registry/transport/upload-gateway-server.js';
import type { RegistryHandler } from '../../registry/model/http.js';
import type { RegistryServices } from '../../registry/services/services.js';
import type { Logger } from '../../registry/support/logger.js';

/**
 * The upload gateway of a local registry: the same handler and server as the container
 * (functions/upload-gateway.ts), on its own port, sharing the registry's stand-ins.
 *
 * Its URL goes into the registry's configuration (upload Locations point at it) before the
 * registry's services exist, so it binds first and is given its services afterwards.
 */
export interface LocalUploadGateway {
  url: string;
  port: number;
  /** Starts answering uploads; until then every request gets 503. */
  serve(services: RegistryServices, registryUrl: string): void;
  stop(): Promise<void>;
}

export interface UploadGatewayLimits {
  /** Uploads in flight at once before 429 (default: from this machine's memory, as in the container). */
  maxConcurrentUploads?: number;
  /** Drop an upload whose body sends nothing this long (default 60 s). */
  bodyIdleTimeoutMs?: number;
}

export async function bindUploadGateway(options: { host: string; port?: number; logger: Logger } & UploadGatewayLimits): Promise<LocalUploadGateway> {
  let handle: RegistryHandler = async () => ({ status: 503, headers: { 'Retry-After': '1', 'Content-Length': '0' } });
  const server = createUploadGatewayServer((request) => handle(request), options.logger, { bodyIdleTimeoutMs: options.bodyIdleTimeoutMs });
  server.listen(options.port ?? 0, options.host);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${options.host}:${port}`,
    port,
    serve(services, registryUrl) {
      const maxConcurrentUploads = options.maxConcurrentUploads ?? defaultMaxUploads(taskMemoryMiB(undefined));
      handle = createUploadGatewayHandler(services, options.logger, registryUrl, { maxConcurrentUploads });
    },
    stop: () => closeServer(server),
  };
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
