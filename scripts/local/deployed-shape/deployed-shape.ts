import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, CloudFrontResultResponse, S3Event } from 'aws-lambda';
import { FRONT_DOOR_KEYS, ORIGIN_IDS, frontDoorFunctionCode } from '../../../functions/edge/front-door-code.js';
import { PROJECT_ROOT, FUNCTION_ENTRIES } from '../../../lib/naming.js';
import { resolveRegistryOptions } from '../../../lib/registry-options.js';
import { tokenAuthEnvironment } from '../../../lib/token-auth.js';
import { configFromEnv, type RegistryConfig } from '../../../registry/config/config.js';
import { environmentOf, type EnvironmentValues } from '../../../registry/config/environment.js';
import { publicKeyPem, signingKeyFromPem } from '../../../registry/services/auth/signing-keys.js';
import { createApp } from '../../../registry/app.js';
import { createAwsClients } from '../../../registry/storage/aws-clients.js';
import { DIRECT_UPLOAD_PREFIX } from '../../../registry/storage/keys.js';
import { silentLogger, type Logger } from '../../../registry/support/logger.js';
import { removeLocalEndpoints, upstreamCredentialsDir, writeLocalEndpoints } from '../../admin/targets.js';
import { createApiGatewayEmulator, type Refusal } from '../api-gateway-emulator.js';
import { ensureAdminUser, ensureLocalUserPool, startCognitoStandIn } from '../cognito-stand-in.js';
import { localSigningKeyPem } from '../local-auth.js';
import { LOCAL_CREDENTIALS } from '../local-credentials.js';
import { readableLogger } from '../readable-logger.js';
import { ensureRegistryResources, startStandIns } from '../stand-ins.js';
import { bindUploadGateway, type LocalUploadGateway } from '../upload-gateway.js';
import { eventDispatcherEnvironment } from '../../../lib/event-dispatcher-environment.js';
import { pullsEnvironment } from '../../../lib/registry-options.js';
import { bundleFunctions } from './bundle.js';
import { startEventBridgeStandIn, type EventBridgeStandIn } from './eventbridge-stand-in.js';
import { startStreamEventSource } from './stream-event-source.js';
import { serveCloudFront } from './cloudfront-emulator.js';
import { startLambdaFunction, type LambdaFunction } from './lambda-emulator.js';
import { createLambdaInvokeApi } from './lambda-invoke-api.js';

/**
 * `REGISTRY_SHAPE=aws npm start`: the registry as it is deployed, on the local stand-ins.
 *
 *   client ─► CloudFront emulator (this port; the front door function in its sandbox, the KVS)
 *               ├─ api      ─► API Gateway emulator (10 MB / 6 MB / 30 s) ─► Lambda emulator: registry function
 *               ├─ uploads  ─► s3rver (SigV4 as origin access control; SHA-256 checksums verified)
 *               └─ gateway  ─► the upload gateway (REGISTRY_UPLOAD_GATEWAY=1)
 *             upload behavior: origin-response ─► Lambda emulator: functions/edge/upload-response.ts
 *   s3rver ObjectCreated under direct/ ─► Lambda emulator: functions/direct-upload-recorder.ts
 *
 * Every function is bundled as the CDK bundles it (lib/function-bundling.ts), configured through
 * the environment contract with the values the CDK writes, and run as Lambda runs it (a cold
 * start per execution environment, one invocation at a time per environment).
 */
export interface DeployedShapeOptions {
  dataDir: string;
  /** The distribution's port (default 5000; 0 picks one). */
  port?: number;
  host?: string;
  /** Run the upload gateway behind the front door (REGISTRY_UPLOAD_GATEWAY=1). */
  uploadGateway?: boolean;
  quiet?: boolean;
  logger?: Logger;
  /** Told about every request the API Gateway emulator refused itself. */
  onRefusal?: (refusal: Refusal) => void;
  /** Execution environments per function at most (default 3). */
  maxInstances?: number;
  /**
   * `cognito` (REGISTRY_AUTH=cognito): logins as deployed, through the token function bundled for
   * Lambda, against the cognito-local stand-in, with `admin` seeded; default open access.
   */
  auth?: 'none' | 'cognito';
  admin?: { username: string; password: string };
  /**
   * A PEM file of certificates the token function trusts besides the public CAs (NODE_EXTRA_CA_CERTS,
   * which Lambda honours too): tests' https OIDC issuers on loopback, since the deployed token
   * function accepts https issuers only.
   */
  extraCaCertificates?: string;
  /** Seconds before each webhook retry (WEBHOOK_RETRY_DELAYS); default the production schedule. */
  webhookRetryDelaysSeconds?: number[];
  /** The CDK's `pullEvents` and `auditPulls` options (REGISTRY_PULL_EVENTS=1, REGISTRY_AUDIT_PULLS=1); both off by default, as there. */
  pulls?: { pullEvents?: boolean; auditPulls?: boolean /** PULL_EVENTS_FLUSH_SECONDS, for tests. */; flushSeconds?: number };
}

export interface DeployedShape {
  /** The one public URL: the distribution's. */
  url: string;
  port: number;
  /** The API's own endpoint (a second way in that the origin secret is meant to close). */
  apiUrl: string;
  functions: Record<string, LambdaFunction>;
  /** What the front door's KeyValueStore holds (the generated secrets). */
  kvs: ReadonlyMap<string, string>;
  config: RegistryConfig;
  /** With `auth: 'cognito'`. */
  auth?: { userPoolId: string; clientId: string; cognitoEndpoint: string; adminCreated: boolean };
  /** The EventBridge and Scheduler stand-in the event dispatcher publishes to and schedules retries on. */
  eventBridge: EventBridgeStandIn;
  stop(): Promise<void>;
}

const REGION = 'us-east-1';
const TABLE_NAME = 'registry';
const BUCKET_NAME = 'registry-blobs';
/** The options of a plain `cdk deploy`: token lifetimes and the like, as the CDK app writes them. */
const DEFAULT_DEPLOYMENT = resolveRegistryOptions({});
/** What the CDK names the webhook retries' schedule group and the role Scheduler assumes (lib/constructs/events.ts). */
const WEBHOOK_RETRY_GROUP = 'registry-webhook-retries';
const SCHEDULER_ROLE_ARN = 'arn:aws:iam::123456789012:role/registry-EventsSchedulerRole';
const EDGE_ENTRIES = {
  uploadResponse: join(PROJECT_ROOT, 'functions', 'edge', 'upload-response.ts'),
  directUploadRecorder: join(PROJECT_ROOT, 'functions', 'direct-upload-recorder.ts'),
};

export async function startDeployedShape(options: DeployedShapeOptions): Promise<DeployedShape> {
  const host = options.host ?? '127.0.0.1';
  const logger = options.logger ?? (options.quiet ? silentLogger : readableLogger());
  await mkdir(options.dataDir, { recursive: true });
  const cleanUp: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const step of cleanUp.splice(0).reverse()) await step().catch((error: unknown) => logger.warn('stopping failed', { error: String(error) }));
  };
  try {
    const logins = options.auth === 'cognito';
    if (logins && !options.admin) throw new Error('auth: cognito needs an admin account');
    const entries: Record<string, string> = {
      registryApi: FUNCTION_ENTRIES.registryApi,
      uploadResponse: EDGE_ENTRIES.uploadResponse,
      pullThroughCopier: FUNCTION_ENTRIES.pullThroughCopier,
      eventDispatcher: FUNCTION_ENTRIES.eventDispatcher,
    };
    if (logins) entries.tokenEndpoint = FUNCTION_ENTRIES.tokenEndpoint;
    // The recorder is written by the registry side of the front door; run it once it exists.
    if (existsSync(EDGE_ENTRIES.directUploadRecorder)) entries.directUploadRecorder = EDGE_ENTRIES.directUploadRecorder;
    const [standIns, bundles] = await Promise.all([
      startStandIns({ dataDir: options.dataDir, host }),
      bundleFunctions(entries, join(options.dataDir, 'deployed-shape', 'bundles')),
    ]);
    cleanUp.push(() => standIns.stop());

    // The distribution binds first: its URL is the registry's public URL.
    const distribution = await listen(createServer(), host, options.port ?? 5000);
    cleanUp.push(() => closeServer(distribution.server));
    const url = `http://${host}:${distribution.port}`;

    // Generated at deploy by the token-keys custom resource in AWS; here at every start.
    const ticketSecret = randomBytes(32).toString('base64url');
    const kvs = new Map([
      [FRONT_DOOR_KEYS.ticketSecrets, ticketSecret],
      [FRONT_DOOR_KEYS.originSecret, randomBytes(32).toString('base64url')],
    ]);
    // Logins: the key pair the token-keys resource keeps in SSM (here in the data directory, as
    // for npm start), given through the environment contract; cognito-local for the user pool.
    let login: Awaited<ReturnType<typeof startLogins>> | undefined;
    if (logins) {
      login = await startLogins(options.dataDir, host, options.admin!);
      cleanUp.push(() => login!.stop());
    }
    // Lambda's Invoke API: the registry function hands blob copies to the copier through it.
    let functions: Record<string, LambdaFunction> = {};
    const lambdaApi = await listen(
      createLambdaInvokeApi(() => functions, logger),
      host,
      0,
    );
    cleanUp.push(() => closeServer(lambdaApi.server));
    const environment = registryEnvironment({
      url,
      lambdaEndpoint: `http://${host}:${lambdaApi.port}`,
      uploadGateway: options.uploadGateway ?? false,
      ticketSecret,
      originSecret: kvs.get(FRONT_DOOR_KEYS.originSecret)!,
      dynamoEndpoint: standIns.dynamoEndpoint,
      s3Endpoint: standIns.s3Endpoint,
      verificationKey: login?.verificationKey,
      upstreamCredentialsDir: upstreamCredentialsDir(options.dataDir),
      pulls: options.pulls,
    });
    const config = configFromEnv(environment);
    await ensureRegistryResources(config);

    const onLog = options.quiet ? undefined : (line: string) => console.error(line);
    const start = (name: string, bundle: string, environment: Record<string, string>) => {
      const fn = startLambdaFunction({
        name,
        bundle,
        environment,
        region: REGION,
        credentials: LOCAL_CREDENTIALS,
        maxInstances: options.maxInstances,
        onLog,
      });
      cleanUp.push(() => fn.stop());
      return fn;
    };
    functions = {
      registryApi: start('registry-api', bundles.registryApi!, environment),
      // Lambda@Edge functions have no environment variables.
      uploadResponse: start('upload-response', bundles.uploadResponse!, {}),
      // As lib/constructs/pull-through.ts: the registry's environment, with Lambda's longest timeout.
      pullThroughCopier: start(PULL_THROUGH_COPIER, bundles.pullThroughCopier!, { ...environment, AWS_LAMBDA_FUNCTION_TIMEOUT: '900' }),
    };
    if (login) {
      // The token function's environment as the CDK writes it: auth, front door, user pool, table.
      functions.tokenEndpoint = start('token', bundles.tokenEndpoint!, {
        ...environmentOf({
          TABLE_NAME,
          BUCKET_NAME,
          DYNAMODB_ENDPOINT: standIns.dynamoEndpoint,
          ...tokenAuthEnvironment(url, DEFAULT_DEPLOYMENT),
          REGISTRY_FRONT_DOOR: true,
          ORIGIN_SECRET: kvs.get(FRONT_DOOR_KEYS.originSecret)!,
          TOKEN_SIGNING_KEY: login.signingKey,
          USER_POOL_ID: login.pool.userPoolId,
          USER_POOL_CLIENT_ID: login.pool.clientId,
          COGNITO_ENDPOINT: login.cognitoEndpoint,
        }),
        ...(options.extraCaCertificates ? { NODE_EXTRA_CA_CERTS: options.extraCaCertificates } : {}),
        AWS_REGION: REGION,
      });
    }
    if (bundles.directUploadRecorder) {
      const recorder = start('direct-upload-recorder', bundles.directUploadRecorder, environment);
      functions.directUploadRecorder = recorder;
      // S3 invokes the function asynchronously (Event invocation): nobody waits for it.
      standIns.onS3Event((event: S3Event) => {
        const records = event.Records.filter(
          (record) => record.s3.object.key.startsWith(DIRECT_UPLOAD_PREFIX) && record.eventName.startsWith('ObjectCreated'),
        );
        if (records.length === 0) return;
        recorder.invoke({ Records: records }).catch((error: unknown) => logger.error('direct upload recorder failed', { error: String(error) }));
      });
    }

    const dispatcher = await startEventDispatcher({
      dataDir: options.dataDir,
      url,
      host,
      dynamoEndpoint: standIns.dynamoEndpoint,
      s3Endpoint: standIns.s3Endpoint,
      retryDelaysSeconds: options.webhookRetryDelaysSeconds,
      pullEvents: options.pulls?.pullEvents ?? false,
      start: (environment) => start('event-dispatcher', bundles.eventDispatcher!, environment),
      logger,
    });
    cleanUp.push(() => dispatcher.stop());
    functions.eventDispatcher = dispatcher.fn;

    const apiGateway = await listen(
      // The HTTP API's routes: /token and /token/* to the token function (with logins), the rest to the registry's.
      createApiGatewayEmulator(
        (event: APIGatewayProxyEventV2) => {
          const token = event.rawPath === '/token' || event.rawPath.startsWith('/token/');
          const target = token && functions.tokenEndpoint ? functions.tokenEndpoint : functions.registryApi!;
          return target.invoke<APIGatewayProxyStructuredResultV2>(event);
        },
        {
          logger,
          onRefusal: options.onRefusal,
        },
      ),
      host,
      0,
    );
    cleanUp.push(() => closeServer(apiGateway.server));
    const apiUrl = `http://${host}:${apiGateway.port}`;

    let gateway: LocalUploadGateway | undefined;
    if (options.uploadGateway) {
      // The gateway is a container in AWS; here it runs in this process on the same stand-ins,
      // with the same configuration, behind the distribution.
      gateway = await bindUploadGateway({ host, logger });
      cleanUp.push(() => gateway!.stop());
      const gatewayConfig = configFromEnv(environment);
      const app = createApp(gatewayConfig, createAwsClients(gatewayConfig, LOCAL_CREDENTIALS), logger);
      gateway.serve(app.services, url);
    }

    serveCloudFront(distribution.server, {
      functionCode: frontDoorFunctionCode({ primaryRegion: REGION, gateway: options.uploadGateway }),
      kvs,
      origins: {
        [ORIGIN_IDS.api]: { kind: 'custom', url: apiUrl },
        [ORIGIN_IDS.uploads]: { kind: 's3', endpoint: standIns.s3Endpoint, bucket: BUCKET_NAME, region: REGION, credentials: LOCAL_CREDENTIALS },
        ...(gateway ? { [ORIGIN_IDS.gateway]: { kind: 'custom' as const, url: gateway.url } } : {}),
      },
      originResponse: (event) => functions.uploadResponse!.invoke<CloudFrontResultResponse>(event),
      domainName: `${host}:${distribution.port}`,
      logger,
    });

    await writeLocalEndpoints(options.dataDir, {
      registryUrl: url,
      region: REGION,
      tableName: TABLE_NAME,
      bucketName: BUCKET_NAME,
      dynamoEndpoint: standIns.dynamoEndpoint,
      s3Endpoint: standIns.s3Endpoint,
    });
    cleanUp.push(() => removeLocalEndpoints(options.dataDir));
    const auth = login && {
      userPoolId: login.pool.userPoolId,
      clientId: login.pool.clientId,
      cognitoEndpoint: login.cognitoEndpoint,
      adminCreated: login.adminCreated,
    };
    return { url, port: distribution.port, apiUrl, functions, kvs, config, auth, eventBridge: dispatcher.eventBridge, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * The registry function's environment as the CDK writes it (lib/registry-stack.ts), behind the
 * front door (upload Locations on the distribution's host with tickets, the origin secret
 * checked), with the stand-ins' endpoints, the secrets and the token verification key themselves
 * instead of their SSM parameters, and token auth when logins are on (open access otherwise).
 * With the upload gateway behind the front door, the gateway's URL is the registry's
 * own (UploadGateway.configureRegistryFunction): upload Locations are absolute on that one host.
 */
function registryEnvironment(values: {
  url: string;
  /** The Invoke API of the emulated functions: blob copies go to the copier function there. */
  lambdaEndpoint: string;
  uploadGateway: boolean;
  ticketSecret: string;
  originSecret: string;
  dynamoEndpoint: string;
  s3Endpoint: string;
  /** Logins on: token auth with this key (PEM). */
  verificationKey?: string;
  /** Pull-through upstream credentials: the owner-only directory the admin CLI's --local writes (SSM in AWS). */
  upstreamCredentialsDir: string;
  pulls?: DeployedShapeOptions['pulls'];
}): Record<string, string> {
  const environment: EnvironmentValues = {
    TABLE_NAME,
    BUCKET_NAME,
    DYNAMODB_ENDPOINT: values.dynamoEndpoint,
    S3_ENDPOINT: values.s3Endpoint,
    PRESIGN_EXPIRY_SECONDS: 300,
    UPLOAD_SESSION_TTL_SECONDS: 24 * 3600,
    ...(values.verificationKey
      ? { ...tokenAuthEnvironment(values.url, DEFAULT_DEPLOYMENT), TOKEN_VERIFICATION_KEY: values.verificationKey }
      : { REGISTRY_AUTH: 'none' }),
    PUBLIC_BASE_URL: values.url,
    REGISTRY_FRONT_DOOR: true,
    UPLOAD_TICKET_SECRET: values.ticketSecret,
    ORIGIN_SECRET: values.originSecret,
    ...(values.uploadGateway ? { UPLOAD_GATEWAY_URL: values.url, UPLOAD_TICKET_TTL_SECONDS: 3600 } : {}),
    UPSTREAM_CREDENTIALS_DIR: values.upstreamCredentialsDir,
    BLOB_COPIER_FUNCTION: PULL_THROUGH_COPIER,
    LAMBDA_ENDPOINT: values.lambdaEndpoint,
    ...pullsEnvironment({ pullEvents: values.pulls?.pullEvents ?? false, auditPulls: values.pulls?.auditPulls ?? false }),
    PULL_EVENTS_FLUSH_SECONDS: values.pulls?.flushSeconds,
  };
  return { ...environmentOf(environment), AWS_REGION: REGION };
}

/** The copier function's name, as the registry function's BLOB_COPIER_FUNCTION names it. */
const PULL_THROUGH_COPIER = 'pull-through-copier';
/**
 * The event dispatcher as lib/constructs/events.ts deploys it: the bundle with the construct's
 * environment (eventDispatcherEnvironment) plus the stand-ins' endpoints and the local webhook
 * settings `npm start` uses (loopback targets, secrets in files where `admin --local` writes
 * them), on the table's stream through an event source mapping (stream-event-source.ts); its
 * EventBridge bus and its retry schedules on the stand-in, which invokes it as Scheduler does.
 */
async function startEventDispatcher(values: {
  dataDir: string;
  url: string;
  host: string;
  dynamoEndpoint: string;
  s3Endpoint: string;
  retryDelaysSeconds?: number[];
  pullEvents: boolean;
  start: (environment: Record<string, string>) => LambdaFunction;
  logger: Logger;
}): Promise<{ fn: LambdaFunction; eventBridge: EventBridgeStandIn; stop(): Promise<void> }> {
  let fn: LambdaFunction | undefined;
  const eventBridge = await startEventBridgeStandIn({
    host: values.host,
    scheduleGroup: WEBHOOK_RETRY_GROUP,
    schedulerRoleArn: SCHEDULER_ROLE_ARN,
    invoke: async (functionArn, event) => {
      if (functionArn !== fn?.arn) throw new Error(`no function ${functionArn}`);
      return fn.invoke(event);
    },
    logger: values.logger,
  });
  try {
    fn = values.start({
      ...environmentOf({
        ...eventDispatcherEnvironment({
          tableName: TABLE_NAME,
          bucketName: BUCKET_NAME,
          publicBaseUrl: values.url,
          pullEvents: values.pullEvents,
          retryRoleArn: SCHEDULER_ROLE_ARN,
          retryGroup: WEBHOOK_RETRY_GROUP,
        }),
        DYNAMODB_ENDPOINT: values.dynamoEndpoint,
        S3_ENDPOINT: values.s3Endpoint,
        EVENTBRIDGE_ENDPOINT: eventBridge.endpoint,
        SCHEDULER_ENDPOINT: eventBridge.endpoint,
        WEBHOOK_LOCAL_TARGETS: true,
        WEBHOOK_SECRETS_DIR: join(values.dataDir, 'webhook-secrets'),
        WEBHOOK_RETRY_DELAYS: values.retryDelaysSeconds?.join(','),
      }),
      AWS_REGION: REGION,
    });
    const source = await startStreamEventSource({
      region: REGION,
      endpoint: values.dynamoEndpoint,
      credentials: LOCAL_CREDENTIALS,
      tableName: TABLE_NAME,
      fn,
      logger: values.logger,
    });
    return {
      fn,
      eventBridge,
      async stop() {
        await source.stop();
        await eventBridge.stop();
      },
    };
  } catch (error) {
    await eventBridge.stop();
    throw error;
  }
}

/** The user pool (cognito-local, the admin seeded) and the token key pair of a shape with logins. */
async function startLogins(dataDir: string, host: string, admin: { username: string; password: string }) {
  const cognito = await startCognitoStandIn({ dataDir, host });
  try {
    const pool = await ensureLocalUserPool(cognito.endpoint, dataDir);
    const adminCreated = await ensureAdminUser(cognito.endpoint, pool, admin.username, admin.password);
    const signingKey = await localSigningKeyPem(dataDir);
    const verificationKey = publicKeyPem(signingKeyFromPem(signingKey));
    return { pool, adminCreated, signingKey, verificationKey, cognitoEndpoint: cognito.endpoint, stop: () => cognito.stop() };
  } catch (error) {
    await cognito.stop();
    throw error;
  }
}

async function listen(server: Server, host: string, port: number): Promise<{ server: Server; port: number }> {
  server.listen(port, host);
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
