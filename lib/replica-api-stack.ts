import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { kmsKeysArn, parameterArn, readParameterStatement, secureParameterKeyStatement } from './constructs/auth-permissions.js';
import { RegistryObservability } from './constructs/observability.js';
import type { RegistryApi } from './constructs/registry-api.js';
import { RegistryFunction } from './constructs/registry-function.js';
import { replicaReadableObjectArns, replicaStorageStatements, type ReplicaStorageArns } from './constructs/storage-permissions.js';
import { blobBucketName, FUNCTION_ENTRIES, metadataTableName, tokenVerificationKeyParameterName } from './naming.js';
import { acknowledgeWildcardResources } from './nag-acknowledgements.js';
import type { RegistryOptions } from './registry-options.js';
import { tokenAuthEnvironment } from './token-auth.js';
import { environmentOf } from '../registry/config/environment.js';
import { recordsAudit } from './constructs/audit-log.js';

export interface ReplicaApiStackProps extends StackProps {
  readonly options: RegistryOptions;
  readonly primaryRegion: string;
  /**
   * The primary registry's base URL: named in the refusal of a push, and the token realm and
   * audience the replica shares with the primary.
   */
  readonly primaryBaseUrl: string;
  /** The region's API, created with its bucket (lib/replica-bucket-stack.ts); the routes are added here. */
  readonly api: RegistryApi;
  /** The primary's origin secret parameter (front door): requests without the secret are refused. */
  readonly originSecretParameterName: string;
  /**
   * Handler file of the registry function.
   * @default functions/registry-api.ts
   */
  readonly registryFunctionEntry?: string;
}

/**
 * A read-only registry API in a replica region. It serves pulls from the local global table
 * replica and redirects blob reads to the local replica bucket, falling back to the primary
 * bucket for blobs that have not replicated yet. Every method is routed to the function, which
 * answers a push with 405 UNSUPPORTED naming the primary; its role is read-only in any case.
 *
 * Logins happen at the primary: the function verifies the primary's tokens with the primary's
 * public key (an SSM parameter in the primary region), and its 401 challenge names the primary's
 * token endpoint. There is no token endpoint, user pool or key pair in a replica region.
 */
export class ReplicaApiStack extends Stack {
  readonly api: RegistryApi;
  readonly registryFunction: RegistryFunction;
  readonly observability: RegistryObservability;

  constructor(scope: Construct, id: string, props: ReplicaApiStackProps) {
    super(scope, id, props);
    const { options, primaryRegion } = props;
    const { registryName } = options;

    const tableName = metadataTableName(registryName);
    const localBucketName = blobBucketName(registryName, this.account, this.region);
    const primaryBucketName = blobBucketName(registryName, this.account, primaryRegion);
    const s3BucketArn = (bucketName: string) => this.formatArn({ service: 's3', region: '', account: '', resource: bucketName });
    const verificationKeyParameterName = tokenVerificationKeyParameterName(registryName);
    const storage: ReplicaStorageArns = {
      tableArn: this.formatArn({ service: 'dynamodb', resource: 'table', resourceName: tableName }),
      localBucketArn: s3BucketArn(localBucketName),
      primaryBucketArn: s3BucketArn(primaryBucketName),
    };

    this.api = props.api;
    const originSecretArn = parameterArn(this, props.originSecretParameterName, primaryRegion);

    this.registryFunction = new RegistryFunction(this, 'RegistryFunction', {
      entry: props.registryFunctionEntry ?? FUNCTION_ENTRIES.registryApi,
      description: `${registryName}: OCI Distribution API (read-only replica)`,
      // Same sizing reasoning as the primary (lib/registry-stack.ts); replicas only serve pulls.
      memorySizeMb: options.functionMemoryMb,
      reservedConcurrency: options.reservedConcurrency,
      logRetentionDays: options.logRetentionDays,
      environment: environmentOf({
        TABLE_NAME: tableName,
        BUCKET_NAME: localBucketName,
        PRESIGN_EXPIRY_SECONDS: String(options.presignExpirySeconds),
        UPLOAD_SESSION_TTL_SECONDS: String(options.uploadSessionTtlSeconds),
        ...tokenAuthEnvironment(props.primaryBaseUrl, options),
        TOKEN_VERIFICATION_KEY_PARAMETER: verificationKeyParameterName,
        TOKEN_KEY_PARAMETER_REGION: primaryRegion,
        REGISTRY_MODE: 'replica',
        PRIMARY_REGION: primaryRegion,
        PRIMARY_BUCKET_NAME: primaryBucketName,
        PRIMARY_BASE_URL: props.primaryBaseUrl,
        // Behind the front door: only requests carrying its origin secret (the primary's parameter).
        REGISTRY_FRONT_DOOR: true,
        ORIGIN_SECRET_PARAMETER: props.originSecretParameterName,
        // Pull events are the primary's only (its counters' stream); audited pulls are recorded here too.
        AUDIT_PULLS: options.auditPulls,
      }),
    });
    this.registryFunction.addToRolePolicy(
      ...replicaStorageStatements(storage),
      readParameterStatement('TokenVerificationKeyRead', parameterArn(this, verificationKeyParameterName, primaryRegion)),
      readParameterStatement('OriginSecretRead', originSecretArn),
      secureParameterKeyStatement(this, 'OriginSecretDecrypt', 'kms:Decrypt', originSecretArn, primaryRegion),
    );
    // Refused tokens (and pulls, with AUDIT_PULLS) are recorded here too; the table replicates them.
    recordsAudit(this.registryFunction, storage.tableArn, options.auditRetentionDays);
    acknowledgeWildcardResources(
      this.registryFunction.role,
      [kmsKeysArn(this, primaryRegion)],
      "The AWS managed key aws/ssm has no id known at synth time; the statement only lets Parameter Store decrypt the primary's origin secret parameter (kms:ViaService and kms:EncryptionContext:PARAMETER_ARN conditions).",
    );
    acknowledgeWildcardResources(
      this.registryFunction.role,
      replicaReadableObjectArns(storage),
      'Read-only access (s3:GetObject) to objects named by content digest under the blobs/ and manifests/ prefixes of the local and the primary bucket.',
    );

    this.api.routeDistributionApi(this.registryFunction.handler, this);

    this.observability = new RegistryObservability(this, 'Observability', {
      dashboardName: `${registryName}-replica-${this.region}`,
      httpApi: this.api.httpApi,
      registryFunction: this.registryFunction.handler,
      tableName,
      serverErrorRateAlarmPercent: options.serverErrorRateAlarmPercent,
      alarmEmail: options.alarmEmail,
    });

    new CfnOutput(this, 'RegistryUrl', {
      value: props.primaryBaseUrl,
      description: "The registry's one URL (its front door): pulls of viewers near this region are served here",
    });
    new CfnOutput(this, 'ApiEndpoint', {
      value: this.api.url,
      description: "This region's API: the front door's origin, refusing requests that skip it",
    });
    new CfnOutput(this, 'TableName', { value: tableName, description: 'Global table replica the replica API reads' });
    new CfnOutput(this, 'BucketName', { value: localBucketName, description: 'Replica blob bucket' });
  }
}
