import { DEFAULT_ADMIN_GROUP } from './auth/access-model.js';

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
}

/**
 * The upload gateway: upload-session Locations point there, with a signed ticket in the URL
 * (functions/commons/uploads/upload-tickets.ts). The same settings serve the registry function
 * (which issues tickets) and the gateway (which checks them and issues fresh ones).
 */
export interface UploadGatewayConfig {
  /** The gateway's public base URL, e.g. `https://uploads.registry.example.com`. */
  url: string;
  /** How long a ticket lets an upload request start. */
  ticketSeconds: number;
  /** The ticket secret: one, or several separated by commas or white space, the signing one first. */
  ticketSecret?: string;
  /** In AWS: the SSM SecureString parameter holding `ticketSecret`, read once per cold start. */
  ticketSecretParameter?: string;
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
  const mode = env.REGISTRY_AUTH ?? 'none';
  if (mode !== 'none' && mode !== 'token') throw new Error(`REGISTRY_AUTH must be none or token, got "${mode}"`);
  return {
    mode,
    publicBaseUrl: (mode === 'token' ? required(env, 'PUBLIC_BASE_URL') : (env.PUBLIC_BASE_URL ?? 'http://localhost')).replace(/\/+$/, ''),
    // Docker requires at least 60 seconds.
    accessTokenSeconds: Math.max(60, positiveInteger(env, 'TOKEN_TTL_SECONDS', 300)),
    refreshTokenSeconds: positiveInteger(env, 'REFRESH_TOKEN_TTL_SECONDS', 30 * 24 * 3600),
    adminGroup: env.ADMIN_GROUP ?? DEFAULT_ADMIN_GROUP,
    userPoolId: env.USER_POOL_ID || undefined,
    userPoolClientId: env.USER_POOL_CLIENT_ID || undefined,
    signingKeyParameter: env.TOKEN_SIGNING_KEY_PARAMETER || undefined,
    verificationKeyParameter: env.TOKEN_VERIFICATION_KEY_PARAMETER || undefined,
    keyParameterRegion: env.TOKEN_KEY_PARAMETER_REGION || undefined,
  };
}

function positiveInteger(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  return optionalPositiveInteger(env, name) ?? fallback;
}

export function optionalPositiveInteger(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return value;
}

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): RegistryConfig {
  return {
    region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    tableName: required(env, 'TABLE_NAME'),
    bucketName: required(env, 'BUCKET_NAME'),
    dynamoEndpoint: env.DYNAMODB_ENDPOINT || undefined,
    s3Endpoint: env.S3_ENDPOINT || undefined,
    presignExpirySeconds: positiveInteger(env, 'PRESIGN_EXPIRY_SECONDS', 300),
    uploadSessionTtlSeconds: positiveInteger(env, 'UPLOAD_SESSION_TTL_SECONDS', 24 * 3600),
    directUpload: {
      urlSeconds: optionalPositiveInteger(env, 'DIRECT_UPLOAD_URL_SECONDS'),
      stepBudgetMs: optionalPositiveInteger(env, 'DIRECT_UPLOAD_STEP_BUDGET_MS'),
    },
    replica:
      env.REGISTRY_MODE === 'replica'
        ? {
            primaryRegion: required(env, 'PRIMARY_REGION'),
            primaryBucketName: required(env, 'PRIMARY_BUCKET_NAME'),
            primaryBaseUrl: required(env, 'PRIMARY_BASE_URL'),
          }
        : undefined,
    uploadGateway: uploadGatewayConfigFromEnv(env),
  };
}

/** `UPLOAD_GATEWAY_URL` turns the gateway on; it needs `UPLOAD_TICKET_SECRET` or `UPLOAD_TICKET_SECRET_PARAMETER`. */
export function uploadGatewayConfigFromEnv(env: NodeJS.ProcessEnv = process.env): UploadGatewayConfig | undefined {
  const url = env.UPLOAD_GATEWAY_URL;
  if (!url) return undefined;
  const ticketSecret = env.UPLOAD_TICKET_SECRET || undefined;
  const ticketSecretParameter = env.UPLOAD_TICKET_SECRET_PARAMETER || undefined;
  if (!ticketSecret && !ticketSecretParameter) {
    throw new Error('UPLOAD_GATEWAY_URL needs UPLOAD_TICKET_SECRET or UPLOAD_TICKET_SECRET_PARAMETER');
  }
  return {
    url: url.replace(/\/+$/, ''),
    ticketSeconds: positiveInteger(env, 'UPLOAD_TICKET_TTL_SECONDS', 3600),
    ticketSecret,
    ticketSecretParameter,
  };
}
