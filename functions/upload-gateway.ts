import { once } from 'node:events';
import { realpathSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { configFromEnv } from '../registry/config/config.js';
import { EnvironmentReader } from '../registry/config/environment.js';
import { createApp } from '../registry/app.js';
import { createAwsClients } from '../registry/storage/aws-clients.js';
import { jsonLogger } from '../registry/support/logger.js';
import { DEFAULT_BODY_IDLE_TIMEOUT_MS } from '../registry/transport/node-server.js';
import { createUploadGatewayHandler, defaultMaxUploads } from '../registry/api/upload-gateway.js';
import { createUploadGatewayServer, taskMemoryMiB } from '../registry/transport/upload-gateway-server.js';
import { withUploadTicketSecret } from '../registry/services/uploads/upload-tickets.js';

/** The upload gateway's container entry (docs/upload-gateway.md; the variables: registry/config/environment.ts). */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<Server> {
  const read = new EnvironmentReader(env);
  const logger = jsonLogger();
  const config = await withUploadTicketSecret(configFromEnv(env));
  const registryUrl = read.string('PUBLIC_BASE_URL')?.replace(/\/+$/, '');
  if (!registryUrl) throw new Error('PUBLIC_BASE_URL (the registry the gateway works for) is not set');
  const maxConcurrentUploads =
    read.integer('UPLOAD_GATEWAY_MAX_UPLOADS') ?? defaultMaxUploads(taskMemoryMiB(read.integer('UPLOAD_GATEWAY_MEMORY_MIB')));
  const idleSeconds = read.integer('UPLOAD_BODY_IDLE_SECONDS');
  const app = createApp(config, createAwsClients(config), logger);
  const handler = createUploadGatewayHandler(app.services, logger, registryUrl, { maxConcurrentUploads });
  const server = createUploadGatewayServer(handler, logger, {
    bodyIdleTimeoutMs: idleSeconds === undefined ? DEFAULT_BODY_IDLE_TIMEOUT_MS : idleSeconds * 1000,
  });
  server.listen(read.integer('PORT') ?? 8080, read.string('HOST') ?? '0.0.0.0');
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
