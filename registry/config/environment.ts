/**
 * The environment contract: every variable the functions and the upload gateway read, named
 * once. The CDK constructs write them with `environmentOf` (lib/), the core reads them through
 * `EnvironmentReader` (config.ts, the GC settings): a name typed wrong fails to compile on
 * either side. docs/configuration.md says what each one means to an operator.
 */
export const VARIABLES = {
  TABLE_NAME: 'the metadata table',
  BUCKET_NAME: 'the blob bucket',
  AWS_REGION: 'set by Lambda: the region of the table and the bucket',
  AWS_DEFAULT_REGION: 'the region, where AWS_REGION is not set (containers)',
  DYNAMODB_ENDPOINT: 'local stand-ins only: the DynamoDB endpoint',
  S3_ENDPOINT: 'local stand-ins only: the S3 endpoint',
  PRESIGN_EXPIRY_SECONDS: 'lifetime of presigned blob GET URLs (default 300)',
  UPLOAD_SESSION_TTL_SECONDS: 'how long an idle upload session is kept (default 86400)',
  DIRECT_UPLOAD_URL_SECONDS: 'the longest a presigned part URL of a direct upload lives (default 900)',
  DIRECT_UPLOAD_STEP_BUDGET_MS: 'hashing time per direct-upload verification request (default 20000)',
  REGISTRY_MODE: '`replica` in replica regions',
  PRIMARY_REGION: 'replicas: the primary region',
  PRIMARY_BUCKET_NAME: 'replicas: the primary bucket, read when a blob has not replicated yet',
  PRIMARY_BASE_URL: 'replicas: the registry pushes go to',
  REGISTRY_AUTH: '`token` (Docker token authentication) or `none` (open, local default)',
  PUBLIC_BASE_URL: 'where clients reach the registry; the token realm is <PUBLIC_BASE_URL>/token',
  TOKEN_TTL_SECONDS: 'lifetime of registry tokens (default 300, at least 60)',
  REFRESH_TOKEN_TTL_SECONDS: 'lifetime of refresh tokens (default 30 days)',
  TOKEN_KEY_GENERATION: 'changes with each key rotation, so that Lambda starts fresh environments',
  ADMIN_GROUP: 'the Cognito group whose members may do everything',
  USER_POOL_ID: 'the Cognito user pool of the logins',
  USER_POOL_CLIENT_ID: 'its app client for USER_PASSWORD_AUTH',
  TOKEN_SIGNING_KEY_PARAMETER: 'SSM SecureString with the token signing key (token endpoint only)',
  TOKEN_VERIFICATION_KEY_PARAMETER: 'SSM String with the token verification key',
  TOKEN_KEY_PARAMETER_REGION: 'the region of those parameters (replicas read the primary one)',
  TOKEN_SIGNING_KEY: 'the token signing key (PEM) itself (local use: the deployed shape)',
  TOKEN_VERIFICATION_KEY: 'the token verification key (PEM) itself (local use)',
  COGNITO_ENDPOINT: 'local stand-ins only: the Cognito endpoint (cognito-local)',
  UPLOAD_GATEWAY_URL: "the upload gateway's public base URL; upload Locations point there",
  UPLOAD_TICKET_SECRET: 'the upload ticket secret itself (local use)',
  UPLOAD_TICKET_SECRET_PARAMETER: 'SSM SecureString with the upload ticket secret (in AWS)',
  UPLOAD_TICKET_TTL_SECONDS: 'how long an upload ticket lets a request start (default 3600)',
  UPLOAD_TICKET_SECRET_GENERATION: 'changes with each ticket secret rotation, so that ECS starts fresh tasks',
  REGISTRY_FRONT_DOOR: '`true` behind the CloudFront front door: upload Locations carry tickets, the origin secret is checked',
  ORIGIN_SECRET: 'the front door origin secret itself (local use)',
  ORIGIN_SECRET_PARAMETER: 'SSM SecureString with the front door origin secret (in AWS)',
  UPLOAD_BODY_IDLE_SECONDS: 'upload gateway: drop a body that sends nothing this long (default 60)',
  UPLOAD_GATEWAY_MAX_UPLOADS: 'upload gateway: uploads in flight at once (default from the memory)',
  UPLOAD_GATEWAY_MEMORY_MIB: "upload gateway: the task's memory",
  PORT: 'upload gateway: the port it listens on (default 8080)',
  HOST: 'upload gateway: the address it listens on (default 0.0.0.0)',
  GC_GRACE_SECONDS: 'maintenance: the GC grace period (default 3600)',
  GC_DRY_RUN: 'maintenance: `true` reports only',
  GC_SCAN_SEGMENTS: "maintenance: parallel Scan segments of GC's mark (default 8)",
  GC_CONCURRENCY: 'maintenance: GC deletions in flight (default 32)',
  GC_DEADLINE_MARGIN_SECONDS: 'maintenance: no new work this long before the Lambda timeout (default 60)',
  AUDIT_RETENTION_DAYS: 'how long audit records are kept, in the table and the audit log group (default 90)',
  AUDIT_PULLS: '`true` records pulls (manifest GETs) in the audit log too (default off)',
  AUDIT_LOG_GROUP: 'stream dispatcher: the CloudWatch log group audit records are forwarded to (in AWS)',
  EVENT_BUS_NAME: 'events: the EventBridge bus registry events go to (in AWS `default`; unset: events only reach webhooks and the log)',
  PULL_EVENTS: 'events: `true` counts pulls per repository, tag and minute and emits them as events (default off)',
  PULL_EVENTS_FLUSH_SECONDS: 'events: how often an instance writes the pulls it counted (default 60; tests shorten it)',
  WEBHOOK_LOCAL_TARGETS: 'local use only: webhooks may use http and loopback addresses',
  WEBHOOK_SECRETS_DIR: 'local use only: the directory of webhook secret files (in AWS they are SSM SecureStrings under /<table>/webhooks/)',
  WEBHOOK_RETRY_DELAYS: 'seconds before each webhook retry, comma-separated (default 10,60,300,1800,7200,21600,43200,86400)',
  WEBHOOK_TIMEOUT_MS: 'how long a webhook delivery waits for an answer (default 10000)',
  WEBHOOK_RETRY_FUNCTION_ARN: 'in AWS: the function EventBridge Scheduler invokes for a webhook retry (the event dispatcher)',
  WEBHOOK_RETRY_ROLE_ARN: 'in AWS: the role EventBridge Scheduler assumes for it',
  WEBHOOK_RETRY_GROUP: 'in AWS: the schedule group of webhook retries',
  UPSTREAM_CREDENTIALS_PARAMETER_PREFIX: 'pull-through: the SSM path of the upstream credentials SecureStrings, e.g. /registry/upstreams/ (in AWS)',
  UPSTREAM_CREDENTIALS_DIR: 'pull-through: the owner-only directory of the upstream credentials files (local use)',
  DOCKER_MIRROR_BASE_URL: "pull-through: the Docker Hub mirror entry's public base URL (its token realm is <it>/token)",
  BLOB_COPIER_FUNCTION: 'pull-through: the copier function blob copies are handed to (async invoke); unset, copies run in process',
  PULL_THROUGH_WAIT_MS: 'pull-through: how long a first pull waits for a streamed blob to be copied before 429 (default 20000)',
  LAMBDA_ENDPOINT: 'local stand-ins only: the Lambda endpoint the copier is invoked at',
  EVENTBRIDGE_ENDPOINT: 'local stand-ins only: the EventBridge endpoint (the deployed shape’s bus stand-in)',
  SCHEDULER_ENDPOINT: 'local stand-ins only: the EventBridge Scheduler endpoint (the deployed shape’s scheduler stand-in)',
} as const;

export type Variable = keyof typeof VARIABLES;

/** Values for some of the variables, as the CDK constructs have them. */
export type EnvironmentValues = { [name in Variable]?: string | number | boolean };

/** The variables for a function's environment, as the CDK constructs write them. */
export function environmentOf(values: EnvironmentValues): Record<string, string> {
  return Object.fromEntries(Object.entries(values).flatMap(([name, value]) => (value === undefined ? [] : [[name, String(value)]])));
}

/** Reads the contract's variables, parsed and checked, with errors that name the variable. */
export class EnvironmentReader {
  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  /** The value, or undefined when unset or empty. */
  string(name: Variable): string | undefined {
    return this.env[name] || undefined;
  }

  required(name: Variable): string {
    const value = this.string(name);
    if (!value) throw new Error(`${name} is not set`);
    return value;
  }

  /** A whole number of at least `minimum`; undefined when unset. */
  integer(name: Variable, minimum = 1): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < minimum) throw new Error(`${name} must be an integer of at least ${minimum}, got "${raw}"`);
    return value;
  }

  flag(name: Variable): boolean {
    return ['1', 'true', 'yes'].includes((this.string(name) ?? '').toLowerCase());
  }
}
