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
}

function positiveInteger(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
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
  };
}
