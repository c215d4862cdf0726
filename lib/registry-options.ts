import type { Node } from 'constructs';
import type { EnvironmentValues } from '../registry/config/environment.js';

/**
 * Everything a deployment of the registry can be configured with. Each field is one cdk.json
 * context key (or `-c key=value` on the command line) of the same name; docs/configuration.md
 * documents them for operators.
 */
export interface RegistryOptionsInput {
  /** Prefix of the stack names and of the physical names of the table and buckets. */
  readonly registryName?: string;
  /** Regions that get a blob bucket replica, a DynamoDB global table replica and a read-only API. */
  readonly replicaRegions?: readonly string[];
  /** Custom host name of the registry, e.g. `registry.example.com`. */
  readonly domainName?: string;
  /**
   * Route 53 hosted zone that holds `domainName` (and `uploadGatewayDomainName`): the stack
   * validates the certificates and adds the alias records there.
   */
  readonly hostedZoneId?: string;
  readonly hostedZoneName?: string;
  /** An existing ACM certificate for `domainName` in the primary region (DNS is then up to you). */
  readonly certificateArn?: string;
  /**
   * Host name of the upload gateway (docs/upload-gateway.md), e.g. `uploads.registry.example.com`;
   * setting it turns the gateway on. Needs the hosted zone options or `uploadGatewayCertificateArn`.
   */
  readonly uploadGatewayDomainName?: string;
  /** An existing ACM certificate for `uploadGatewayDomainName` in the primary region. */
  readonly uploadGatewayCertificateArn?: string;
  /**
   * `true` turns the upload gateway on behind the front door (docs/front-door.md): upload bodies
   * reach it through the same distribution and host name, over a CloudFront VPC origin to an
   * internal load balancer; no domain, certificate or DNS record of its own.
   */
  readonly uploadGateway?: boolean;
  /**
   * `true` adds the Docker Hub mirror entry (docs/pull-through.md): a second CloudFront
   * distribution for dockerd's `registry-mirrors`, whose requests resolve unprefixed names to the
   * Docker Hub upstream; with `domainName` it is `mirror.<domainName>` (on the same certificate).
   */
  readonly dockerMirror?: boolean;
  /** Memory of the registry function in MB. */
  readonly functionMemoryMb?: number;
  /** Reserved concurrency of the registry function; unset means it shares the account's pool. */
  readonly reservedConcurrency?: number;
  /** Lifetime of the presigned S3 GET URLs that blob reads redirect to. */
  readonly presignExpirySeconds?: number;
  /** How long an idle upload session lives before DynamoDB TTL removes it. */
  readonly uploadSessionTtlSeconds?: number;
  /** S3 aborts multipart uploads that are still incomplete after this many days. */
  readonly abortIncompleteUploadsAfterDays?: number;
  /** S3 deletes overwritten or deleted object versions after this many days. */
  readonly noncurrentVersionExpirationDays?: number;
  /** Retention of the API access logs and function logs. */
  readonly logRetentionDays?: number;
  /** E-mail address subscribed to the alarm topic; without it, no topic is created. */
  readonly alarmEmail?: string;
  /** The 5xx alarm fires when more than this percentage of requests fail (given at least 20 requests in 5 minutes). */
  readonly serverErrorRateAlarmPercent?: number;
  /** Steady-state request rate limit of the API's default stage (requests per second). */
  readonly apiThrottleRateLimit?: number;
  /** Burst limit of the API's default stage (requests). */
  readonly apiThrottleBurstLimit?: number;
  /** Lifetime of the registry access tokens the token endpoint issues (at least 60, Docker's minimum). */
  readonly tokenTtlSeconds?: number;
  /** Lifetime of the refresh tokens `docker login` keeps as its identity token. */
  readonly refreshTokenTtlSeconds?: number;
  /** Raise it (1, 2, 3, ...) to replace the token key pair on the next deploy; every issued token stops working. */
  readonly tokenKeyGeneration?: number;
  /** EventBridge schedule expression of the maintenance run (retention, then garbage collection). */
  readonly maintenanceSchedule?: string;
  /** Garbage collection keeps blobs and objects written or touched within this many seconds. */
  readonly gcGraceSeconds?: number;
  /** How long audit records are kept, in the table (TTL) and in the audit log group (docs/audit-log.md): a CloudWatch retention. */
  readonly auditRetentionDays?: number;
  /** `true` counts pulls per repository, tag and minute and emits them as events (docs/events.md); off by default. */
  readonly pullEvents?: boolean;
  /** `true` records pulls (manifest GETs) in the audit log too (docs/audit-log.md); off by default. */
  readonly auditPulls?: boolean;
}

export interface CustomDomainOptions {
  readonly domainName: string;
  /** More names of the front door's certificate (the Docker mirror's `mirror.<domainName>`). */
  readonly alternativeNames?: readonly string[];
  readonly hostedZone?: { readonly id: string; readonly name: string };
  readonly certificateArn?: string;
}

/**
 * The upload gateway (lib/constructs/upload-gateway.ts); absent means none. Behind the front door
 * (`uploadGateway=true`) it has no host name of its own; otherwise it has `domainName`.
 */
export interface UploadGatewayOptions {
  readonly behindFrontDoor?: boolean;
  readonly domainName?: string;
  /** The registry's hosted zone: the gateway's certificate is validated and its alias record created there. */
  readonly hostedZone?: { readonly id: string; readonly name: string };
  readonly certificateArn?: string;
}

export interface DockerMirrorOptions {
  /** `mirror.<domainName>` with a custom domain; else the distribution's own host name. */
  readonly domainName?: string;
}

export interface ApiThrottleOptions {
  readonly rateLimit: number;
  readonly burstLimit: number;
}

/** Validated options with every default applied. */
export interface RegistryOptions {
  readonly registryName: string;
  readonly replicaRegions: readonly string[];
  readonly customDomain?: CustomDomainOptions;
  readonly uploadGateway?: UploadGatewayOptions;
  /** The Docker Hub mirror's distribution; absent means none. */
  readonly dockerMirror?: DockerMirrorOptions;
  readonly functionMemoryMb: number;
  readonly reservedConcurrency?: number;
  readonly presignExpirySeconds: number;
  readonly uploadSessionTtlSeconds: number;
  readonly abortIncompleteUploadsAfterDays: number;
  readonly noncurrentVersionExpirationDays: number;
  readonly logRetentionDays: number;
  readonly alarmEmail?: string;
  readonly serverErrorRateAlarmPercent: number;
  readonly apiThrottle?: ApiThrottleOptions;
  readonly tokenTtlSeconds: number;
  readonly refreshTokenTtlSeconds: number;
  readonly tokenKeyGeneration: number;
  readonly maintenanceSchedule: string;
  readonly gcGraceSeconds: number;
  readonly auditRetentionDays: number;
  readonly pullEvents: boolean;
  readonly auditPulls: boolean;
}

export const DEFAULT_OPTIONS = {
  registryName: 'oci-registry',
  functionMemoryMb: 1024,
  presignExpirySeconds: 300,
  uploadSessionTtlSeconds: 86_400,
  abortIncompleteUploadsAfterDays: 7,
  noncurrentVersionExpirationDays: 30,
  logRetentionDays: 30,
  serverErrorRateAlarmPercent: 5,
  tokenTtlSeconds: 300,
  refreshTokenTtlSeconds: 30 * 86_400,
  tokenKeyGeneration: 1,
  maintenanceSchedule: 'rate(1 day)',
  gcGraceSeconds: 3600,
  auditRetentionDays: 90,
  pullEvents: false,
  auditPulls: false,
} as const;

/**
 * Garbage collection's grace period must exceed the longest registry request, and a Lambda
 * function runs at most 15 minutes (see registry/services/gc/collect-garbage.ts).
 */
export const MIN_GC_GRACE_SECONDS = 900;

/** The retention periods CloudWatch Logs accepts. */
const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

/** A retention CloudWatch Logs accepts. */
function retentionDays(key: string, value: number | undefined, fallback: number): number {
  const days = positiveInteger(key, value, fallback);
  if (!LOG_RETENTION_DAYS.includes(days)) throw new RegistryOptionsError(`${key} must be one of ${LOG_RETENTION_DAYS.join(', ')}`);
  return days;
}

/** At most 20 characters so that `<name>-blobs-<account>-<region>` stays within S3's 63. */
const REGISTRY_NAME = /^[a-z][a-z0-9-]{1,18}[a-z0-9]$/;
const REGION = /^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$/;
const DOMAIN_NAME = /^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
/** EventBridge wants the singular unit for a value of 1 and the plural otherwise. */
const RATE_EXPRESSION = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/;
/** Six fields: minutes hours day-of-month month day-of-week year. */
const CRON_EXPRESSION = /^cron\(\S+( \S+){5}\)$/;

export class RegistryOptionsError extends Error {
  constructor(message: string) {
    super(`Invalid registry configuration: ${message} (see docs/configuration.md)`);
    this.name = 'RegistryOptionsError';
  }
}

/**
 * Applies defaults and rejects inconsistent combinations early, at synth time, rather than
 * half-way through a CloudFormation deployment.
 *
 * @param primaryRegion the primary stack's region when it is known (required for replication)
 */
export function resolveRegistryOptions(input: RegistryOptionsInput, primaryRegion?: string): RegistryOptions {
  const registryName = input.registryName ?? DEFAULT_OPTIONS.registryName;
  if (!REGISTRY_NAME.test(registryName)) {
    throw new RegistryOptionsError(`registryName "${registryName}" must be 3-20 lowercase letters, digits or hyphens, starting with a letter`);
  }

  const replicaRegions = [...(input.replicaRegions ?? [])];
  for (const region of replicaRegions) {
    if (!REGION.test(region)) throw new RegistryOptionsError(`replicaRegions: "${region}" is not a region name`);
  }
  if (new Set(replicaRegions).size !== replicaRegions.length) {
    throw new RegistryOptionsError('replicaRegions lists a region twice');
  }
  if (replicaRegions.length > 0) {
    if (!primaryRegion) {
      throw new RegistryOptionsError('replicaRegions needs an explicit primary region: set context "region" or AWS_REGION / a profile region');
    }
    if (replicaRegions.includes(primaryRegion)) {
      throw new RegistryOptionsError(`replicaRegions must not contain the primary region ${primaryRegion}`);
    }
  }

  const uploadSessionTtlSeconds = positiveInteger('uploadSessionTtlSeconds', input.uploadSessionTtlSeconds, DEFAULT_OPTIONS.uploadSessionTtlSeconds);
  const abortIncompleteUploadsAfterDays = positiveInteger(
    'abortIncompleteUploadsAfterDays',
    input.abortIncompleteUploadsAfterDays,
    DEFAULT_OPTIONS.abortIncompleteUploadsAfterDays,
  );
  // A live upload session must never lose its multipart upload to the lifecycle rule.
  if (abortIncompleteUploadsAfterDays * 86_400 < uploadSessionTtlSeconds) {
    throw new RegistryOptionsError(
      `abortIncompleteUploadsAfterDays (${abortIncompleteUploadsAfterDays}) must cover uploadSessionTtlSeconds (${uploadSessionTtlSeconds})`,
    );
  }

  const presignExpirySeconds = positiveInteger('presignExpirySeconds', input.presignExpirySeconds, DEFAULT_OPTIONS.presignExpirySeconds);
  // SigV4 presigned URLs are valid for at most 7 days.
  if (presignExpirySeconds > 604_800) throw new RegistryOptionsError('presignExpirySeconds must be at most 604800 (7 days)');

  const functionMemoryMb = positiveInteger('functionMemoryMb', input.functionMemoryMb, DEFAULT_OPTIONS.functionMemoryMb);
  if (functionMemoryMb < 128 || functionMemoryMb > 10_240) {
    throw new RegistryOptionsError('functionMemoryMb must be between 128 and 10240');
  }

  const logRetentionDays = retentionDays('logRetentionDays', input.logRetentionDays, DEFAULT_OPTIONS.logRetentionDays);

  const serverErrorRateAlarmPercent = positiveNumber(
    'serverErrorRateAlarmPercent',
    input.serverErrorRateAlarmPercent,
    DEFAULT_OPTIONS.serverErrorRateAlarmPercent,
  );
  if (serverErrorRateAlarmPercent > 100) throw new RegistryOptionsError('serverErrorRateAlarmPercent must be at most 100');

  if (input.alarmEmail !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(input.alarmEmail)) {
    throw new RegistryOptionsError(`alarmEmail "${input.alarmEmail}" is not an e-mail address`);
  }

  const tokenTtlSeconds = positiveInteger('tokenTtlSeconds', input.tokenTtlSeconds, DEFAULT_OPTIONS.tokenTtlSeconds);
  // Docker refuses tokens that live less than 60 seconds (the function would raise it anyway).
  if (tokenTtlSeconds < 60) throw new RegistryOptionsError('tokenTtlSeconds must be at least 60');
  const refreshTokenTtlSeconds = positiveInteger('refreshTokenTtlSeconds', input.refreshTokenTtlSeconds, DEFAULT_OPTIONS.refreshTokenTtlSeconds);
  if (refreshTokenTtlSeconds < tokenTtlSeconds) {
    throw new RegistryOptionsError(`refreshTokenTtlSeconds (${refreshTokenTtlSeconds}) must be at least tokenTtlSeconds (${tokenTtlSeconds})`);
  }

  const gcGraceSeconds = positiveInteger('gcGraceSeconds', input.gcGraceSeconds, DEFAULT_OPTIONS.gcGraceSeconds);
  if (gcGraceSeconds < MIN_GC_GRACE_SECONDS) {
    throw new RegistryOptionsError(
      `gcGraceSeconds must be at least ${MIN_GC_GRACE_SECONDS}: it must exceed the longest registry request (a Lambda runs at most 15 minutes)`,
    );
  }

  const resolvedDomain = resolveCustomDomain(input, primaryRegion);
  const dockerMirror: DockerMirrorOptions | undefined = input.dockerMirror
    ? resolvedDomain
      ? { domainName: `mirror.${resolvedDomain.domainName}` }
      : {}
    : undefined;
  const customDomain =
    resolvedDomain && dockerMirror?.domainName ? { ...resolvedDomain, alternativeNames: [dockerMirror.domainName] } : resolvedDomain;

  return {
    registryName,
    replicaRegions,
    customDomain,
    uploadGateway: resolveUploadGateway(input, customDomain, primaryRegion),
    dockerMirror,
    functionMemoryMb,
    reservedConcurrency: optionalInteger('reservedConcurrency', input.reservedConcurrency, 1),
    presignExpirySeconds,
    uploadSessionTtlSeconds,
    abortIncompleteUploadsAfterDays,
    noncurrentVersionExpirationDays: positiveInteger(
      'noncurrentVersionExpirationDays',
      input.noncurrentVersionExpirationDays,
      DEFAULT_OPTIONS.noncurrentVersionExpirationDays,
    ),
    logRetentionDays,
    alarmEmail: input.alarmEmail,
    serverErrorRateAlarmPercent,
    apiThrottle: resolveApiThrottle(input),
    tokenTtlSeconds,
    refreshTokenTtlSeconds,
    tokenKeyGeneration: positiveInteger('tokenKeyGeneration', input.tokenKeyGeneration, DEFAULT_OPTIONS.tokenKeyGeneration),
    maintenanceSchedule: resolveSchedule(input.maintenanceSchedule),
    gcGraceSeconds,
    auditRetentionDays: retentionDays('auditRetentionDays', input.auditRetentionDays, DEFAULT_OPTIONS.auditRetentionDays),
    pullEvents: input.pullEvents ?? DEFAULT_OPTIONS.pullEvents,
    auditPulls: input.auditPulls ?? DEFAULT_OPTIONS.auditPulls,
  };
}

/**
 * What the registry function is told about pulls (PULL_EVENTS, AUDIT_PULLS): one definition for
 * the stack and the local deployed shape.
 */
export function pullsEnvironment(options: Pick<RegistryOptions, 'pullEvents' | 'auditPulls'>): EnvironmentValues {
  return { PULL_EVENTS: options.pullEvents, AUDIT_PULLS: options.auditPulls };
}

function resolveSchedule(expression: string | undefined): string {
  if (expression === undefined) return DEFAULT_OPTIONS.maintenanceSchedule;
  const rate = RATE_EXPRESSION.exec(expression);
  if (rate) {
    const value = Number(rate[1]);
    const plural = rate[2].endsWith('s');
    if (value < 1 || plural !== value > 1) {
      throw new RegistryOptionsError(
        `maintenanceSchedule "${expression}": a rate needs a positive value, with a singular unit for 1 (rate(1 day)) and a plural one otherwise (rate(12 hours))`,
      );
    }
    return expression;
  }
  if (CRON_EXPRESSION.test(expression)) return expression;
  throw new RegistryOptionsError(
    `maintenanceSchedule "${expression}" is not an EventBridge schedule expression such as rate(1 day) or cron(0 3 * * ? *)`,
  );
}

function resolveCustomDomain(input: RegistryOptionsInput, primaryRegion?: string): CustomDomainOptions | undefined {
  const { domainName, hostedZoneId, hostedZoneName, certificateArn } = input;
  if ((hostedZoneId === undefined) !== (hostedZoneName === undefined)) {
    throw new RegistryOptionsError('hostedZoneId and hostedZoneName go together');
  }
  if (domainName === undefined) {
    if (certificateArn !== undefined) throw new RegistryOptionsError('certificateArn needs domainName');
    // The upload gateway may use the zone on its own (a registry on the API's default URL).
    if (hostedZoneId !== undefined && input.uploadGatewayDomainName === undefined) {
      throw new RegistryOptionsError('hostedZoneId/hostedZoneName need domainName or uploadGatewayDomainName');
    }
    return undefined;
  }
  const normalizedDomain = normalizeHostName('domainName', domainName);
  if (hostedZoneId === undefined && certificateArn === undefined) {
    throw new RegistryOptionsError('domainName needs either hostedZoneId + hostedZoneName or certificateArn');
  }
  const hostedZone = resolveHostedZone(input, 'domainName', normalizedDomain);
  // The domain is served by the front door (CloudFront), which takes certificates from us-east-1 only.
  if (certificateArn !== undefined) checkCertificateArn('certificateArn', certificateArn, 'us-east-1');
  void primaryRegion;
  return { domainName: normalizedDomain, hostedZone, certificateArn };
}

/**
 * The upload gateway needs its own host name (a certificate and a DNS name of its own, on its
 * ALB), in the registry's hosted zone or covered by a certificate given here.
 */
function resolveUploadGateway(
  input: RegistryOptionsInput,
  customDomain: CustomDomainOptions | undefined,
  primaryRegion?: string,
): UploadGatewayOptions | undefined {
  const { uploadGatewayDomainName, uploadGatewayCertificateArn } = input;
  if (input.uploadGateway === true) {
    if (uploadGatewayDomainName !== undefined || uploadGatewayCertificateArn !== undefined) {
      throw new RegistryOptionsError('uploadGateway=true puts the gateway behind the front door: it needs no uploadGatewayDomainName or certificate');
    }
    return { behindFrontDoor: true };
  }
  if (uploadGatewayDomainName === undefined) {
    if (uploadGatewayCertificateArn !== undefined) throw new RegistryOptionsError('uploadGatewayCertificateArn needs uploadGatewayDomainName');
    return undefined;
  }
  const domainName = normalizeHostName('uploadGatewayDomainName', uploadGatewayDomainName);
  if (customDomain && domainName === customDomain.domainName) {
    throw new RegistryOptionsError(
      `uploadGatewayDomainName must differ from domainName ${customDomain.domainName}: the gateway has its own load balancer and DNS name`,
    );
  }
  if (input.hostedZoneId === undefined && uploadGatewayCertificateArn === undefined) {
    throw new RegistryOptionsError(
      'uploadGatewayDomainName needs either hostedZoneId + hostedZoneName (the zone that holds it) or uploadGatewayCertificateArn',
    );
  }
  const hostedZone = resolveHostedZone(input, 'uploadGatewayDomainName', domainName);
  // An ALB only accepts certificates from its own region.
  if (uploadGatewayCertificateArn !== undefined) checkCertificateArn('uploadGatewayCertificateArn', uploadGatewayCertificateArn, primaryRegion);
  return { domainName, hostedZone, certificateArn: uploadGatewayCertificateArn };
}

function normalizeHostName(key: string, value: string): string {
  const normalized = value.toLowerCase().replace(/\.$/, '');
  if (!DOMAIN_NAME.test(normalized)) throw new RegistryOptionsError(`${key} "${value}" is not a host name`);
  return normalized;
}

/** The hosted zone options, if given, after checking that `hostName` lies inside the zone. */
function resolveHostedZone(input: RegistryOptionsInput, key: string, hostName: string): { id: string; name: string } | undefined {
  if (input.hostedZoneId === undefined || input.hostedZoneName === undefined) return undefined;
  const zoneName = input.hostedZoneName.toLowerCase().replace(/\.$/, '');
  if (hostName !== zoneName && !hostName.endsWith(`.${zoneName}`)) {
    throw new RegistryOptionsError(`${key} ${hostName} is not inside hostedZoneName ${zoneName}`);
  }
  return { id: input.hostedZoneId, name: zoneName };
}

/** Regional API Gateway domains and ALBs only accept a certificate from their own region. */
function checkCertificateArn(key: string, arn: string, primaryRegion?: string): void {
  const arnRegion = /^arn:aws[a-z-]*:acm:([a-z0-9-]+):\d{12}:certificate\/[\w-]+$/.exec(arn)?.[1];
  if (!arnRegion) throw new RegistryOptionsError(`${key} "${arn}" is not an ACM certificate ARN`);
  if (primaryRegion && arnRegion !== primaryRegion) {
    throw new RegistryOptionsError(`${key} is in ${arnRegion}, but the registry is deployed to ${primaryRegion}`);
  }
}

function resolveApiThrottle(input: RegistryOptionsInput): ApiThrottleOptions | undefined {
  const rateLimit = optionalInteger('apiThrottleRateLimit', input.apiThrottleRateLimit, 1);
  const burstLimit = optionalInteger('apiThrottleBurstLimit', input.apiThrottleBurstLimit, 1);
  if (rateLimit === undefined && burstLimit === undefined) return undefined;
  if (rateLimit === undefined || burstLimit === undefined) {
    throw new RegistryOptionsError('apiThrottleRateLimit and apiThrottleBurstLimit go together');
  }
  return { rateLimit, burstLimit };
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  return optionalInteger(name, value, 1) ?? fallback;
}

function optionalInteger(name: string, value: number | undefined, minimum: number): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < minimum) {
    throw new RegistryOptionsError(`${name} must be an integer of at least ${minimum}, got ${value}`);
  }
  return value;
}

function positiveNumber(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new RegistryOptionsError(`${name} must be a positive number, got ${value}`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// Reading the options from CDK context. Values given with `-c key=value` arrive as strings,
// values in cdk.json keep their JSON type, so both forms are accepted.

const NUMBER_KEYS = [
  'functionMemoryMb',
  'reservedConcurrency',
  'presignExpirySeconds',
  'uploadSessionTtlSeconds',
  'abortIncompleteUploadsAfterDays',
  'noncurrentVersionExpirationDays',
  'logRetentionDays',
  'serverErrorRateAlarmPercent',
  'apiThrottleRateLimit',
  'apiThrottleBurstLimit',
  'tokenTtlSeconds',
  'refreshTokenTtlSeconds',
  'tokenKeyGeneration',
  'gcGraceSeconds',
  'auditRetentionDays',
] as const satisfies readonly (keyof RegistryOptionsInput)[];

const STRING_KEYS = [
  'registryName',
  'domainName',
  'hostedZoneId',
  'hostedZoneName',
  'certificateArn',
  'uploadGatewayDomainName',
  'uploadGatewayCertificateArn',
  'alarmEmail',
  'maintenanceSchedule',
] as const satisfies readonly (keyof RegistryOptionsInput)[];

/** Reads every option from the construct tree's context (cdk.json and `-c`). */
export function registryOptionsInputFromContext(node: Node): RegistryOptionsInput {
  const input: Record<string, unknown> = {};
  for (const key of STRING_KEYS) input[key] = contextString(node, key);
  for (const key of NUMBER_KEYS) input[key] = contextNumber(node, key);
  input.replicaRegions = contextStringList(node, 'replicaRegions');
  input.uploadGateway = contextFlag(node, 'uploadGateway');
  input.dockerMirror = contextFlag(node, 'dockerMirror');
  input.pullEvents = contextFlag(node, 'pullEvents');
  input.auditPulls = contextFlag(node, 'auditPulls');
  return input as RegistryOptionsInput;
}

function contextString(node: Node, key: string): string | undefined {
  const value: unknown = node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw new RegistryOptionsError(`context ${key} must be a string`);
  return value.trim();
}

function contextFlag(node: Node, key: string): boolean | undefined {
  const value: unknown = node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new RegistryOptionsError(`context ${key} must be true or false`);
}

function contextNumber(node: Node, key: string): number | undefined {
  const value: unknown = node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  const parsed = typeof value === 'string' ? Number(value) : value;
  if (typeof parsed !== 'number' || Number.isNaN(parsed)) throw new RegistryOptionsError(`context ${key} must be a number`);
  return parsed;
}

/** Accepts a JSON list (`["eu-west-1","ap-northeast-1"]`, in cdk.json or as a string) or `eu-west-1,ap-northeast-1`. */
function contextStringList(node: Node, key: string): string[] | undefined {
  const value: unknown = node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  let list: unknown = value;
  if (typeof value === 'string') {
    const text = value.trim();
    if (text.startsWith('[')) {
      try {
        list = JSON.parse(text);
      } catch {
        throw new RegistryOptionsError(`context ${key} is not valid JSON: ${text}`);
      }
    } else {
      list = text.split(',');
    }
  }
  if (!Array.isArray(list) || !list.every((item) => typeof item === 'string')) {
    throw new RegistryOptionsError(`context ${key} must be a list of strings`);
  }
  return list.map((item: string) => item.trim()).filter((item) => item !== '');
}
