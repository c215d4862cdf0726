import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { BlobBucket } from './constructs/blob-bucket.js';
import { CustomDomain } from './constructs/custom-domain.js';
import { MetadataTable } from './constructs/metadata-table.js';
import { RegistryObservability } from './constructs/observability.js';
import { RegistryApi } from './constructs/registry-api.js';
import { RegistryFunction } from './constructs/registry-function.js';
import { registryBucketStatements, registryObjectArns, registryTableStatements } from './constructs/storage-permissions.js';
import { RegistryUserPool } from './constructs/user-pool.js';
import { blobBucketName, FUNCTION_ENTRIES, metadataTableName } from './naming.js';
import { acknowledgeWildcardResources } from './nag-acknowledgements.js';
import type { RegistryOptions } from './registry-options.js';

export interface RegistryStackProps extends StackProps {
  readonly options: RegistryOptions;
  /**
   * Handler file of the registry function.
   * @default functions/registry-api.ts
   */
  readonly registryFunctionEntry?: string;
}

/**
 * The registry in its primary region: the read-write API, its function, the table (a global
 * table when there are replica regions), the blob bucket (replicating to the replica buckets),
 * the Cognito user pool, the optional custom domain, and dashboards and alarms.
 */
export class RegistryStack extends Stack {
  readonly blobs: BlobBucket;
  readonly metadata: MetadataTable;
  readonly users: RegistryUserPool;
  readonly customDomain?: CustomDomain;
  readonly api: RegistryApi;
  readonly registryFunction: RegistryFunction;
  readonly observability: RegistryObservability;
  /** Base URL the registry advertises (custom domain or the API's default endpoint). */
  readonly registryUrl: string;

  constructor(scope: Construct, id: string, props: RegistryStackProps) {
    super(scope, id, props);
    const { options } = props;
    const { registryName } = options;

    this.blobs = new BlobBucket(this, 'Blobs', {
      bucketName: blobBucketName(registryName, this.account, this.region),
      abortIncompleteUploadsAfterDays: options.abortIncompleteUploadsAfterDays,
      noncurrentVersionExpirationDays: options.noncurrentVersionExpirationDays,
      // Staging objects of sessions that DynamoDB TTL already removed; one day of slack.
      staleUploadsExpireAfterDays: Math.ceil(options.uploadSessionTtlSeconds / 86_400) + 1,
      replicas: options.replicaRegions.map((region) => ({
        region,
        bucketName: blobBucketName(registryName, this.account, region),
      })),
    });

    this.metadata = new MetadataTable(this, 'Metadata', {
      tableName: metadataTableName(registryName),
      replicaRegions: options.replicaRegions,
    });

    this.users = new RegistryUserPool(this, 'Users', { userPoolName: `${registryName}-users` });

    if (options.customDomain) {
      this.customDomain = new CustomDomain(this, 'CustomDomain', options.customDomain);
    }

    this.api = new RegistryApi(this, 'Api', {
      apiName: registryName,
      description: 'OCI Distribution registry (read-write)',
      logRetentionDays: options.logRetentionDays,
      throttle: options.apiThrottle,
      customDomain: this.customDomain,
    });
    this.registryUrl = this.api.url;

    // Memory: each request carries at most ~4.4 MiB of body (the Lambda payload limit after
    // base64), held a few times over (base64 text, decoded buffer, S3 request) and hashed with
    // SHA-256 in WebAssembly. CPU and network bandwidth grow with memory, and each request makes
    // several sequential DynamoDB and S3 calls, so 1024 MB (about 0.6 vCPU) keeps latency low
    // without paying for idle capacity; tune with `functionMemoryMb` after `npm run bench`.
    this.registryFunction = new RegistryFunction(this, 'RegistryFunction', {
      entry: props.registryFunctionEntry ?? FUNCTION_ENTRIES.registryApi,
      description: `${registryName}: OCI Distribution API (read-write)`,
      memorySizeMb: options.functionMemoryMb,
      reservedConcurrency: options.reservedConcurrency,
      logRetentionDays: options.logRetentionDays,
      environment: {
        TABLE_NAME: this.metadata.table.tableName,
        BUCKET_NAME: this.blobs.bucket.bucketName,
        PRESIGN_EXPIRY_SECONDS: String(options.presignExpirySeconds),
        UPLOAD_SESSION_TTL_SECONDS: String(options.uploadSessionTtlSeconds),
        PUBLIC_BASE_URL: this.registryUrl,
      },
    });
    this.registryFunction.addToRolePolicy(
      ...registryTableStatements(this.metadata.table.tableArn),
      ...registryBucketStatements(this.blobs.bucket.bucketArn),
    );
    acknowledgeWildcardResources(
      this.registryFunction.role,
      registryObjectArns(this.blobs.bucket.bucketArn),
      'Objects are named by content digest or upload id under the blobs/, uploads/ and manifests/ prefixes; the grant is limited to those prefixes and to the actions the function performs.',
    );

    this.api.routeDistributionApi(this.registryFunction.handler, 'read-write');
    // Issue 3 wires the Docker token endpoint here with one call:
    //   this.api.routeTokenEndpoint(new RegistryFunction(this, 'TokenFunction', {
    //     entry: FUNCTION_ENTRIES.tokenEndpoint, ... }).handler);

    this.observability = new RegistryObservability(this, 'Observability', {
      dashboardName: registryName,
      httpApi: this.api.httpApi,
      registryFunction: this.registryFunction.handler,
      tableName: this.metadata.table.tableName,
      serverErrorRateAlarmPercent: options.serverErrorRateAlarmPercent,
      alarmEmail: options.alarmEmail,
      tableReplicaRegions: options.replicaRegions,
    });

    // The CLIs in scripts/ read these outputs by name.
    new CfnOutput(this, 'RegistryUrl', { value: this.registryUrl, description: 'Base URL of the registry (docker login <host>)' });
    new CfnOutput(this, 'UserPoolId', { value: this.users.userPool.userPoolId, description: 'Cognito user pool of registry users' });
    new CfnOutput(this, 'UserPoolClientId', {
      value: this.users.tokenEndpointClient.userPoolClientId,
      description: 'App client the token endpoint signs users in with',
    });
    new CfnOutput(this, 'TableName', { value: this.metadata.table.tableName, description: 'DynamoDB table of registry metadata' });
    new CfnOutput(this, 'BucketName', { value: this.blobs.bucket.bucketName, description: 'S3 bucket of blobs and large manifests' });
  }
}
