import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import type { RegistryConfig } from '../../functions/commons/config.js';
import { createAwsClients } from '../../functions/commons/storage/aws-clients.js';
import { createServices } from '../../functions/commons/services.js';
import { createRegistry } from '../../functions/commons/registry.js';
import { createNodeServer } from '../../functions/commons/http/node-server.js';
import { jsonLogger, silentLogger } from '../../functions/commons/logger.js';
import { LOCAL_CREDENTIALS, ensureRegistryResources, startStandIns } from './stand-ins.js';

export interface LocalRegistry {
  url: string;
  port: number;
  config: RegistryConfig;
  stop(): Promise<void>;
}

export interface LocalRegistryOptions {
  dataDir: string;
  /** 0 picks any free port. */
  port?: number;
  host?: string;
  quiet?: boolean;
  /** Overrides of the registry configuration, e.g. a short presign expiry in tests. */
  overrides?: Partial<RegistryConfig>;
}

/**
 * The registry as `npm start` runs it: AWS-protocol stand-ins for DynamoDB and S3 under
 * `dataDir`, and the same registry code as in Lambda behind a streaming Node HTTP server.
 */
export async function startLocalRegistry(options: LocalRegistryOptions): Promise<LocalRegistry> {
  const host = options.host ?? '127.0.0.1';
  await mkdir(options.dataDir, { recursive: true });
  const standIns = await startStandIns({ dataDir: options.dataDir, host });
  try {
    const config: RegistryConfig = {
      region: 'us-east-1',
      tableName: 'registry',
      bucketName: 'registry-blobs',
      dynamoEndpoint: standIns.dynamoEndpoint,
      s3Endpoint: standIns.s3Endpoint,
      presignExpirySeconds: 300,
      uploadSessionTtlSeconds: 24 * 3600,
      ...options.overrides,
    };
    await ensureRegistryResources(config);
    const logger = options.quiet ? silentLogger : jsonLogger();
    const registry = createRegistry(createServices(config, createAwsClients(config, LOCAL_CREDENTIALS)), logger);
    const server = createNodeServer(registry, logger);
    server.listen(options.port ?? 5000, host);
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    return {
      url: `http://${host}:${port}`,
      port,
      config,
      async stop() {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await standIns.stop();
      },
    };
  } catch (error) {
    await standIns.stop();
    throw error;
  }
}
