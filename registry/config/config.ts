import { DEFAULT_ADMIN_GROUP } from '../model/auth/access-model.js';
import { EnvironmentReader } from './environment.js';

/** Everything the registry reads from its environment, parsed once per process. */
export interface RegistryConfig {
  region: string;
  tableName: string;
  bucketName: string;
  /** Set only for local stand-ins; in AWS the SDK's regional endpoints are used. */
  dynamoEndpoint?: string;
  s3Endpoint?: string;
  /** Lifetime of presigned blob GET URLs. */
  presignExpirySeconds: number;
  /** How long an idle upload session is kept before it expires. */
  uploadSessionTtlSeconds: number;
  /** Uploads straight to S3 (docs/direct-push.md); unset values take the service's defaults. */
  directUpload?: {
    /** DIRECT_UPLOAD_URL_SECONDS (default 900): the longest a presigned part URL lives. */
    urlSeconds?: number;
    /** DIRECT_UPLOAD_STEP_BUDGET_MS (default 20000): hashing time per verification request. */
    stepBudgetMs?: number;
  };
  /** Set in replica regions: a read-only registry that falls back to the primary's bucket. */
  replica?: ReplicaConfig;
  /** Set when upload bodies go to the upload gateway (docs/upload-gateway.md) instead of through API Gateway. */
  uploadGateway?: UploadGatewayConfig;
  /** Set when the registry is behind its CloudFront front door (docs/front-door.md). */
  frontDoor?: FrontDoorConfig;
  /** The audit log (docs/audit-log.md); unset values take AUDIT_DEFAULTS. */
  audit?: AuditConfig;
  /** Registry events and webhooks (docs/events.md); defaults when absent. */
  events?: EventsConfig;
  /** The pull-through cache (docs/pull-through.md); its upstreams are data, not configuration. */
  pullThrough?: PullThroughConfig;
  /** How pull-through blob copies run (docs/pull-through.md, "Blobs"). */
  blobCopy?: BlobCopyConfig;
}

/** Where the pull-through cache finds upstream credentials, and its Docker Hub mirror entry. */
export interface PullThroughConfig {
  /** In AWS: the SSM path under which each upstream's credentials are a SecureString `<prefix><name>`. */
  credentialsParameterPrefix?: string;
  /** Locally: the owner-only directory of `<name>.json` credentials files. */
  credentialsDir?: string;
  /** The Docker Hub mirror entry's public base URL, when it has one of its own (AWS: the second distribution). */
  dockerMirrorBaseUrl?: string;
  /**
   * How long an instance keeps the upstream list it resolves names with (default UPSTREAMS_CACHE_MS,
   * 5 s): a new or changed upstream reaches warm instances within it. The call-counting tests
   * lengthen it, so that a refresh never lands in the request they count.
   */
  upstreamsCacheMs?: number;
}

export interface BlobCopyConfig {
  /** BLOB_COPIER_FUNCTION: the copier function, invoked asynchronously; unset, copies run in this process. */
  copierFunction?: string;
  /** PULL_THROUGH_WAIT_MS: how long a first pull waits for a streamed blob's copy before 429. */
  waitMs?: number;
  /** LAMBDA_ENDPOINT: local stand-ins only. */
  lambdaEndpoint?: string;
}

/** The audit log's settings (docs/audit-log.md). */
export interface AuditConfig {
  /** AUDIT_RETENTION_DAYS: how long a record is kept (TTL `expiresAt`), and the audit log group's retention. */
  retentionDays: number;
  /** AUDIT_PULLS: record pulls (manifest GETs) too. */
  pulls: boolean;
  /** AUDIT_LOG_GROUP, in AWS: the stream dispatcher copies each record to this CloudWatch log group. */
  logGroupName?: string;
}

export const AUDIT_DEFAULTS: AuditConfig = { retentionDays: 90, pulls: false };

export function auditConfig(read: EnvironmentReader = new EnvironmentReader()): AuditConfig {
  return {
    retentionDays: read.integer('AUDIT_RETENTION_DAYS') ?? AUDIT_DEFAULTS.retentionDays,
    pulls: read.flag('AUDIT_PULLS'),
    logGroupName: read.string('AUDIT_LOG_GROUP'),
  };
}

/** Registry events, webhooks and pull counting (docs/events.md). */
export interface EventsConfig {
  /** The EventBridge bus to publish to; unset, events go to webhooks and the log only (local). */
  eventBusName?: string;
  /** The CloudEvents `source` of webhook deliveries: the registry's public URL (PUBLIC_BASE_URL). */
  source?: string;
  /** Local stand-ins only: EventBridge's endpoint. */
  eventBusEndpoint?: string;
  /** Count pulls and emit them as events (off by default: pulls are frequent). */
  pullEvents: boolean;
  /** How often an instance writes the pulls it counted (default 60 s). */
  pullFlushSeconds?: number;
  /** Webhooks may use http and loopback (local use). */
  localTargets: boolean;
  /** Local: where webhook secrets are files; unset, SSM SecureStrings under /<table>/webhooks/. */
  secretsDir?: string;
  retryDelaysSeconds?: number[];
  timeoutMs?: number;
  /** In AWS: retries as EventBridge Scheduler schedules invoking this function; unset, in-process timers. */
  retrySchedule?: { functionArn: string; roleArn: string; groupName: string; endpoint?: string };
}

/** How upload tickets are made and checked (registry/services/uploads/upload-tickets.ts). */
export interface UploadTicketSettings {
  /** How long a ticket lets an upload request start. */
  ticketSeconds: number;
  /** The ticket secret: one, or several separated by commas or white space, the signing one first. */
  ticketSecret?: string;
  /** In AWS: the SSM SecureString parameter holding `ticketSecret`, read once per cold start. */
  ticketSecretParameter?: string;
}

/**
 * The front door (docs/front-door.md): a CloudFront distribution is the only way in. Upload
 * Locations stay on the registry's host and carry a ticket, with which the front door's function
 * sends a monolithic PUT straight to the bucket; requests that do not carry the origin secret
 * the function sets did not come through the front door and are refused.
 */
export interface FrontDoorConfig extends UploadTicketSettings {
  /** The registry's one public base URL (the distribution's, or the custom domain), named in refusals. */
  url: string;
  /** The value of `x-registry-origin-secret` every request must carry; unset, nothing is checked. */
  originSecret?: string;
  /** In AWS: the SSM SecureString parameter holding `originSecret`, read once per cold start. */
  originSecretParameter?: string;
}

/**
 * The upload gateway: upload-session Locations point there, with a signed ticket in the URL
 * (registry/services/uploads/upload-tickets.ts). The same settings serve the registry function
 * (which issues tickets) and the gateway (which checks them and issues fresh ones).
 */
export interface UploadGatewayConfig extends UploadTicketSettings {
  /** The gateway's public base URL, e.g. `https://uploads.registry.example.com`. */
  url: string;
}

export interface ReplicaConfig {
  primaryRegion: string;
  primaryBucketName: string;
  /** Named in the error a push to the replica gets. */
  primaryBaseUrl: string;
}

/**
 * Docker token authentication. `none` is registry:2's open mode (local default); deployed
 * stacks run `token`.
 */
export interface AuthConfig {
  mode: 'none' | 'token';
  /** Where clients reach the registry; the token realm is `<publicBaseUrl>/token`. */
  publicBaseUrl: string;
  accessTokenSeconds: number;
  refreshTokenSeconds: number;
  /** The Cognito group whose members may do everything. */
  adminGroup: string;
  userPoolId?: string;
  userPoolClientId?: string;
  /** SSM parameters holding the token key pair: the private key (SecureString) and the public one. */
  signingKeyParameter?: string;
  verificationKeyParameter?: string;
  /** The region holding those parameters: a replica reads the primary's. */
  keyParameterRegion?: string;
  /** Local use (the deployed shape): the keys themselves, instead of their parameters. */
  signingKey?: string;
  verificationKey?: string;
  /** Local use: the cognito-local stand-in instead of Cognito. */
  cognitoEndpoint?: string;
  /**
   * OIDC workload trusts may name a plain-http issuer on a loopback address. Set only by the local
   * registry (`npm start`) for test issuers; never read from the environment, so never in AWS.
   */
  allowLoopbackHttpIssuers?: boolean;
}

export function realmOf(auth: AuthConfig): string {
  return `${auth.publicBaseUrl}/token`;
}

/** The `service` of challenges and the audience of tokens: the registry's host name. */
export function serviceOf(auth: AuthConfig): string {
  return new URL(auth.publicBaseUrl).host;
}

/** Tokens are issued by the realm. */
export const issuerOf = realmOf;

export function authConfigFromEnv(env: NodeJS.ProcessEnv = process.env): AuthConfig {
  const read = new EnvironmentReader(env);
  const mode = read.string('REGISTRY_AUTH') ?? 'none';
  if (mode !== 'none' && mode !== 'token') throw new Error(`REGISTRY_AUTH must be none or token, got "${mode}"`);
  return {
    mode,
    publicBaseUrl: (mode === 'token' ? read.required('PUBLIC_BASE_URL') : (read.string('PUBLIC_BASE_URL') ?? 'http://localhost')).replace(/\/+$/, ''),
    // Docker requires at least 60 seconds.
    accessTokenSeconds: Math.max(60, read.integer('TOKEN_TTL_SECONDS') ?? 300),
    refreshTokenSeconds: read.integer('REFRESH_TOKEN_TTL_SECONDS') ?? 30 * 24 * 3600,
    adminGroup: read.string('ADMIN_GROUP') ?? DEFAULT_ADMIN_GROUP,
    userPoolId: read.string('USER_POOL_ID'),
    userPoolClientId: read.string('USER_POOL_CLIENT_ID'),
    signingKeyParameter: read.string('TOKEN_SIGNING_KEY_PARAMETER'),
    verificationKeyParameter: read.string('TOKEN_VERIFICATION_KEY_PARAMETER'),
    keyParameterRegion: read.string('TOKEN_KEY_PARAMETER_REGION'),
    signingKey: read.string('TOKEN_SIGNING_KEY'),
    verificationKey: read.string('TOKEN_VERIFICATION_KEY'),
    cognitoEndpoint: read.string('COGNITO_ENDPOINT'),
  };
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): RegistryConfig {
  const read = new EnvironmentReader(env);
  return {
    region: read.string('AWS_REGION') ?? read.string('AWS_DEFAULT_REGION') ?? 'us-east-1',
    tableName: read.required('TABLE_NAME'),
    bucketName: read.required('BUCKET_NAME'),
    dynamoEndpoint: read.string('DYNAMODB_ENDPOINT'),
    s3Endpoint: read.string('S3_ENDPOINT'),
    presignExpirySeconds: read.integer('PRESIGN_EXPIRY_SECONDS') ?? 300,
    uploadSessionTtlSeconds: read.integer('UPLOAD_SESSION_TTL_SECONDS') ?? 24 * 3600,
    directUpload: {
      urlSeconds: read.integer('DIRECT_UPLOAD_URL_SECONDS'),
      stepBudgetMs: read.integer('DIRECT_UPLOAD_STEP_BUDGET_MS'),
    },
    replica:
      read.string('REGISTRY_MODE') === 'replica'
        ? {
            primaryRegion: read.required('PRIMARY_REGION'),
            primaryBucketName: read.required('PRIMARY_BUCKET_NAME'),
            primaryBaseUrl: read.required('PRIMARY_BASE_URL'),
          }
        : undefined,
    uploadGateway: uploadGatewayConfig(read),
    frontDoor: frontDoorConfig(read),
    pullThrough: {
      credentialsParameterPrefix: read.string('UPSTREAM_CREDENTIALS_PARAMETER_PREFIX'),
      credentialsDir: read.string('UPSTREAM_CREDENTIALS_DIR'),
      dockerMirrorBaseUrl: read.string('DOCKER_MIRROR_BASE_URL')?.replace(/\/+$/, ''),
    },
    blobCopy: {
      copierFunction: read.string('BLOB_COPIER_FUNCTION'),
      waitMs: read.integer('PULL_THROUGH_WAIT_MS'),
      lambdaEndpoint: read.string('LAMBDA_ENDPOINT'),
    },
    audit: auditConfig(read),
    events: eventsConfig(read),
  };
}

function eventsConfig(read: EnvironmentReader): EventsConfig {
  const delays = read.string('WEBHOOK_RETRY_DELAYS');
  const retryDelaysSeconds = delays?.split(',').map((part) => Number(part.trim()));
  if (retryDelaysSeconds?.some((delay) => !Number.isFinite(delay) || delay < 0)) {
    throw new Error(`WEBHOOK_RETRY_DELAYS must be seconds separated by commas, got "${delays}"`);
  }
  const functionArn = read.string('WEBHOOK_RETRY_FUNCTION_ARN');
  return {
    eventBusName: read.string('EVENT_BUS_NAME'),
    source: read.string('PUBLIC_BASE_URL')?.replace(/\/+$/, ''),
    eventBusEndpoint: read.string('EVENTBRIDGE_ENDPOINT'),
    pullEvents: read.flag('PULL_EVENTS'),
    pullFlushSeconds: read.integer('PULL_EVENTS_FLUSH_SECONDS'),
    localTargets: read.flag('WEBHOOK_LOCAL_TARGETS'),
    secretsDir: read.string('WEBHOOK_SECRETS_DIR'),
    retryDelaysSeconds,
    timeoutMs: read.integer('WEBHOOK_TIMEOUT_MS'),
    retrySchedule: functionArn
      ? {
          functionArn,
          roleArn: read.required('WEBHOOK_RETRY_ROLE_ARN'),
          groupName: read.required('WEBHOOK_RETRY_GROUP'),
          endpoint: read.string('SCHEDULER_ENDPOINT'),
        }
      : undefined,
  };
}

/** `UPLOAD_GATEWAY_URL` turns the gateway on; it needs `UPLOAD_TICKET_SECRET` or `UPLOAD_TICKET_SECRET_PARAMETER`. */
function uploadGatewayConfig(read: EnvironmentReader): UploadGatewayConfig | undefined {
  const url = read.string('UPLOAD_GATEWAY_URL');
  if (!url) return undefined;
  const tickets = ticketSettings(read);
  if (!tickets.ticketSecret && !tickets.ticketSecretParameter) {
    throw new Error('UPLOAD_GATEWAY_URL needs UPLOAD_TICKET_SECRET or UPLOAD_TICKET_SECRET_PARAMETER');
  }
  return { url: url.replace(/\/+$/, ''), ...tickets };
}

/**
 * `REGISTRY_FRONT_DOOR` turns the front door on; it needs PUBLIC_BASE_URL. The ticket secret is
 * needed where upload Locations are made (the registry function, the gateway), not by the token
 * endpoint, which checks only the origin secret.
 */
function frontDoorConfig(read: EnvironmentReader): FrontDoorConfig | undefined {
  if (!read.flag('REGISTRY_FRONT_DOOR')) return undefined;
  return {
    url: read.required('PUBLIC_BASE_URL').replace(/\/+$/, ''),
    ...ticketSettings(read),
    originSecret: read.string('ORIGIN_SECRET'),
    originSecretParameter: read.string('ORIGIN_SECRET_PARAMETER'),
  };
}

function ticketSettings(read: EnvironmentReader): UploadTicketSettings {
  const ticketSecret = read.string('UPLOAD_TICKET_SECRET');
  const ticketSecretParameter = read.string('UPLOAD_TICKET_SECRET_PARAMETER');
  return { ticketSeconds: read.integer('UPLOAD_TICKET_TTL_SECONDS') ?? 3600, ticketSecret, ticketSecretParameter };
}
