import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuthConfig, RegistryConfig } from '../../registry/config/config.js';
import { createAwsClients } from '../../registry/storage/aws-clients.js';
import type { CallCounter } from '../../registry/storage/call-counter.js';
import { createApp } from '../../registry/app.js';
import type { RegistryHandler } from '../../registry/model/http.js';
import { DEFAULT_ADMIN_GROUP } from '../../registry/model/auth/access-model.js';
import { createTokenEndpoint } from '../../registry/api/token-endpoint.js';
import { createNodeServer } from '../../registry/transport/node-server.js';
import { silentLogger, type Logger } from '../../registry/support/logger.js';
import { readableLogger } from './readable-logger.js';
import { ensureRegistryResources, startStandIns, type StandIns } from './stand-ins.js';
import { listenOrExplain } from './start-errors.js';
import type { RunningService } from './dynamodb-local.js';
import { LOCAL_CREDENTIALS } from './local-credentials.js';
import { startLocalAuth } from './local-auth.js';
import { removeLocalEndpoints, upstreamCredentialsDir, writeLocalEndpoints } from '../admin/targets.js';
import { createApiGatewayEmulator, lambdaInvokeOf, type ApiGatewayLimits, type Refusal } from './api-gateway-emulator.js';
import { bindUploadGateway, type LocalUploadGateway, type UploadGatewayLimits } from './upload-gateway.js';
import { startLocalEventDispatcher } from './event-dispatcher.js';

export interface LocalRegistry {
  url: string;
  port: number;
  config: RegistryConfig;
  /** Set with `auth: 'cognito'`. */
  auth?: {
    userPoolId: string;
    clientId: string;
    cognitoEndpoint: string;
    /** Whether this start created the admin account (so its password is new). */
    adminCreated: boolean;
  };
  /** Set with `uploadGateway`: where upload Locations point. */
  uploadGatewayUrl?: string;
  /** Set with `dockerMirrorPort`: the Docker Hub mirror entry. */
  dockerMirrorUrl?: string;
  stop(): Promise<void>;
}

export interface LocalRegistryOptions {
  dataDir: string;
  /** Counts the registry's DynamoDB and S3 calls (npm run bench:calls). */
  callCounter?: CallCounter;
  /** 0 picks any free port. */
  port?: number;
  host?: string;
  quiet?: boolean;
  /** Where the registry logs (default: readable lines on stderr, or nothing with `quiet`). */
  logger?: Logger;
  /** Drop a request whose body sends nothing this long (default 60 s), here and in the upload gateway. */
  bodyIdleTimeoutMs?: number;
  /** Overrides of the registry configuration, e.g. a short presign expiry in tests. */
  overrides?: Partial<RegistryConfig>;
  /** `none` (default) is open like registry:2; `cognito` runs the production token flow. */
  auth?: 'none' | 'cognito';
  /** The admin account seeded into the local user pool with `auth: 'cognito'`. */
  admin?: { username: string; password: string };
  /** Lifetime of registry tokens with auth on; tests shorten it to see expiry. */
  accessTokenSeconds?: number;
  /**
   * Serve the registry as AWS does, behind an emulation of API Gateway's and Lambda's limits
   * (scripts/local/api-gateway-emulator.ts) instead of the streaming server: `true` for AWS's.
   */
  apiGateway?: boolean | { limits?: Partial<ApiGatewayLimits>; onRefusal?: (refusal: Refusal) => void };
  /** Told one line per step of the start as it completes (each stand-in, the table and bucket), for `npm start`. */
  onProgress?: (line: string) => void;
  /** A DynamoDB Local already starting on the data dir (npm start launches it before loading this module). */
  dynamoDbLocal?: Promise<RunningService>;
  /** Also serve the Docker Hub mirror entry (docs/pull-through.md) on this port (0: any free one), for dockerd's `registry-mirrors`. */
  dockerMirrorPort?: number;
  /** Also run the upload gateway (docs/upload-gateway.md) on its own port; upload Locations point there. */
  uploadGateway?: { port?: number; ticketSecret?: string; ticketSeconds?: number } & Omit<UploadGatewayLimits, 'bodyIdleTimeoutMs'>;
}

/**
 * The registry as `npm start` runs it: AWS-protocol stand-ins for DynamoDB and S3 under
 * `dataDir`, and the same registry code as in Lambda behind a streaming Node HTTP server.
 */
export async function startLocalRegistry(options: LocalRegistryOptions): Promise<LocalRegistry> {
  const host = options.host ?? '127.0.0.1';
  const logger = options.logger ?? (options.quiet ? silentLogger : readableLogger());
  // The registry's port first: a port in use is refused at once, before anything starts, and
  // until the stand-ins are up every request gets 503 with Retry-After.
  let handle: RegistryHandler = async () => ({ status: 503, headers: { 'Retry-After': '1', 'Content-Length': '0' } });
  const apiGateway = options.apiGateway === true ? {} : options.apiGateway;
  const server: Server = apiGateway
    ? createApiGatewayEmulator(
        lambdaInvokeOf((request) => handle(request)),
        { ...apiGateway, logger },
      )
    : createNodeServer((request) => handle(request), logger, { bodyIdleTimeoutMs: options.bodyIdleTimeoutMs });
  try {
    await listenOrExplain(server, options.port ?? 5000, host);
  } catch (error) {
    await options.dynamoDbLocal?.then((dynamo) => dynamo.stop()).catch(() => undefined);
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host}:${port}`;
  // The Docker Hub mirror entry: the same registry, its requests marked as arriving there.
  const mirror =
    options.dockerMirrorPort === undefined
      ? undefined
      : createNodeServer((request) => handle({ ...request, entry: 'docker-mirror' }), logger, { bodyIdleTimeoutMs: options.bodyIdleTimeoutMs });
  if (mirror) {
    try {
      await listenOrExplain(mirror, options.dockerMirrorPort!, host);
    } catch (error) {
      await closeServer(server);
      await options.dynamoDbLocal?.then((dynamo) => dynamo.stop()).catch(() => undefined);
      throw error;
    }
  }
  const dockerMirrorUrl = mirror && `http://${host}:${(mirror.address() as AddressInfo).port}`;
  let standIns: StandIns | undefined;
  let uploadGateway: LocalUploadGateway | undefined;
  try {
    await mkdir(options.dataDir, { recursive: true });
    const running = await startStandIns({ dataDir: options.dataDir, host, onReady: options.onProgress, dynamoDbLocal: options.dynamoDbLocal });
    standIns = running;
    if (options.uploadGateway) {
      const { port, maxConcurrentUploads } = options.uploadGateway;
      uploadGateway = await bindUploadGateway({ host, port, logger, maxConcurrentUploads, bodyIdleTimeoutMs: options.bodyIdleTimeoutMs });
    }
    const config: RegistryConfig = {
      region: 'us-east-1',
      tableName: 'registry',
      bucketName: 'registry-blobs',
      dynamoEndpoint: running.dynamoEndpoint,
      s3Endpoint: running.s3Endpoint,
      presignExpirySeconds: 300,
      uploadSessionTtlSeconds: 24 * 3600,
      uploadGateway: uploadGateway && {
        url: uploadGateway.url,
        ticketSeconds: options.uploadGateway?.ticketSeconds ?? 3600,
        ticketSecret: options.uploadGateway?.ticketSecret ?? randomBytes(32).toString('base64url'),
      },
      ...options.overrides,
      pullThrough: {
        credentialsDir: upstreamCredentialsDir(options.dataDir),
        dockerMirrorBaseUrl: dockerMirrorUrl,
        ...options.overrides?.pullThrough,
      },
      // Webhooks to loopback allowed locally; their secrets in files beside the data.
      events: {
        pullEvents: false,
        localTargets: true,
        secretsDir: join(options.dataDir, 'webhook-secrets'),
        source: url,
        ...options.overrides?.events,
      },
    };
    const resourcesStarted = performance.now();
    await ensureRegistryResources(config);
    options.onProgress?.(`table ${config.tableName} and bucket ${config.bucketName} ready (${seconds(resourcesStarted)})`);
    const clients = createAwsClients(config, LOCAL_CREDENTIALS, options.callCounter);
    const app = createApp(config, clients, logger);
    // What Lambda's event source mapping does in AWS: the stream's records to the handlers, on
    // clients of its own (a function of its own in AWS: its calls are not the API's).
    const dispatcher = await startLocalEventDispatcher(config, createApp(config, createAwsClients(config, LOCAL_CREDENTIALS), logger), logger);
    // The token realm names the port, known since the bind above.
    let localAuth: Awaited<ReturnType<typeof startLocalAuth>> | undefined;
    if (options.auth === 'cognito') {
      const auth: AuthConfig = {
        mode: 'token',
        publicBaseUrl: url,
        accessTokenSeconds: options.accessTokenSeconds ?? 300,
        refreshTokenSeconds: 30 * 24 * 3600,
        adminGroup: DEFAULT_ADMIN_GROUP,
      };
      if (!options.admin) throw new Error('auth: cognito needs an admin account');
      const authStarted = performance.now();
      localAuth = await startLocalAuth({
        dataDir: options.dataDir,
        host,
        auth,
        config,
        clients,
        admin: options.admin,
        logger,
        audit: app.services.audit,
      });
      options.onProgress?.(`Cognito stand-in (cognito-local) and user pool ready on ${localAuth.cognitoEndpoint} (${seconds(authStarted)})`);
      const registry = app.registry(localAuth.authorizer);
      const tokenEndpoint = createTokenEndpoint(localAuth.tokens, logger);
      handle = (request) => (request.path === '/token' || request.path.startsWith('/token/') ? tokenEndpoint(request) : registry(request));
    } else {
      handle = app.registry();
    }
    uploadGateway?.serve(app.services, url);
    await writeLocalEndpoints(options.dataDir, {
      registryUrl: url,
      region: config.region,
      tableName: config.tableName,
      bucketName: config.bucketName,
      dynamoEndpoint: running.dynamoEndpoint,
      s3Endpoint: running.s3Endpoint,
      cognitoEndpoint: localAuth?.cognitoEndpoint,
      userPoolId: localAuth?.pool.userPoolId,
      clientId: localAuth?.pool.clientId,
    });
    return {
      url,
      port,
      config,
      auth: localAuth && {
        userPoolId: localAuth.pool.userPoolId,
        clientId: localAuth.pool.clientId,
        cognitoEndpoint: localAuth.cognitoEndpoint,
        adminCreated: localAuth.adminCreated,
      },
      uploadGatewayUrl: uploadGateway?.url,
      dockerMirrorUrl,
      async stop() {
        await removeLocalEndpoints(options.dataDir);
        await dispatcher.stop();
        await app.services.pullCounter?.flush();
        if (mirror) await closeServer(mirror);
        await closeServer(server);
        await uploadGateway?.stop();
        await localAuth?.stop();
        await running.stop();
      },
    };
  } catch (error) {
    if (mirror) await closeServer(mirror);
    await closeServer(server);
    await uploadGateway?.stop();
    await standIns?.stop();
    throw error;
  }
}

function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`;
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
