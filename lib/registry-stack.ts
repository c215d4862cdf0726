import { CfnOutput, Lazy, Stack, type StackProps } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as route53 from 'aws-cdk-lib/aws-route53';
import type { Construct } from 'constructs';
import { BlobBucket } from './constructs/blob-bucket.js';
import { FrontDoor } from './constructs/front-door.js';
import { MetadataTable } from './constructs/metadata-table.js';
import { RegistryObservability } from './constructs/observability.js';
import {
  kmsKeysArn,
  parameterArn,
  readParameterStatement,
  secureParameterKeyStatement,
  tokenEndpointStatements,
} from './constructs/auth-permissions.js';
import { RegistryApi } from './constructs/registry-api.js';
import { RegistryFunction } from './constructs/registry-function.js';
import { RegistryMaintenance } from './constructs/registry-maintenance.js';
import { RegistryEvents } from './constructs/events.js';
import { RegistryAuditLog } from './constructs/audit-log.js';
import { PullThrough } from './constructs/pull-through.js';
import {
  directObjectArns,
  directUploadRecorderStatements,
  registryBucketStatements,
  registryObjectArns,
  registryTableStatements,
} from './constructs/storage-permissions.js';
import { TokenKeys } from './constructs/token-keys.js';
import { UploadGateway } from './constructs/upload-gateway.js';
import { RegistryUserPool } from './constructs/user-pool.js';
import { blobBucketName, FUNCTION_ENTRIES, metadataTableName, originSecretParameterName, uploadTicketSecretParameterName } from './naming.js';
import { acknowledgeWildcardResources } from './nag-acknowledgements.js';
import { pullsEnvironment, type RegistryOptions } from './registry-options.js';
import { tokenAuthEnvironment } from './token-auth.js';
import { environmentOf } from '../registry/config/environment.js';

export interface RegistryStackProps extends StackProps {
  readonly options: RegistryOptions;
  /**
   * Handler file of the registry function.
   * @default functions/registry-api.ts
   */
  readonly registryFunctionEntry?: string;
  /**
   * The certificate of the custom domain, in us-east-1 (CloudFront's rule), when the stack is
   * elsewhere: created by the certificate stack (lib/registry-app.ts).
   */
  readonly frontDoorCertificate?: acm.ICertificate;
  /** The replica regions' API endpoints, created with their buckets (lib/replica-bucket-stack.ts). */
  readonly replicaApiEndpoints?: readonly { readonly region: string; readonly endpoint: string }[];
}

/**
 * Memory of the token endpoint: a login verifies a robot's scrypt hash (16 MiB, CPU-bound) or
 * calls Cognito, and signs an ES256 token; 512 MB gives a third of a vCPU, enough for both.
 */
export const TOKEN_FUNCTION_MEMORY_MB = 512;

/**
 * The registry in its primary region: the read-write API, its function, the Docker token
 * endpoint and its key pair, the table (a global table when there are replica regions), the
 * blob bucket (replicating to the replica buckets), the Cognito user pool, the optional custom
 * domain, the scheduled maintenance run, and dashboards and alarms; optionally the upload gateway
 * for layers larger than API Gateway and Lambda accept (docs/upload-gateway.md).
 */
export class RegistryStack extends Stack {
  readonly blobs: BlobBucket;
  readonly metadata: MetadataTable;
  readonly users: RegistryUserPool;
  readonly api: RegistryApi;
  /** The only public entry (docs/front-door.md). */
  readonly frontDoor: FrontDoor;
  readonly directUploadRecorder: RegistryFunction;
  readonly registryFunction: RegistryFunction;
  readonly tokenKeys: TokenKeys;
  readonly tokenFunction: RegistryFunction;
  readonly maintenance: RegistryMaintenance;
  /** Registry events and webhooks from the table's stream (docs/events.md). */
  readonly events: RegistryEvents;
  /** Who did what (docs/audit-log.md): records in the table, copied to their log group. */
  readonly auditLog: RegistryAuditLog;
  /** The pull-through cache's copier and credential permissions (docs/pull-through.md). */
  readonly pullThrough: PullThrough;
  readonly observability: RegistryObservability;
  /** With `uploadGatewayDomainName` only. */
  readonly uploadGateway?: UploadGateway;
  /** Base URL the registry advertises: the front door's (custom domain or the distribution's). */
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

    // Its execute-api endpoint is the front door's origin: reachable, but refused without the
    // origin secret (registry/api/front-door.ts).
    this.api = new RegistryApi(this, 'Api', {
      apiName: registryName,
      description: 'OCI Distribution registry (read-write)',
      logRetentionDays: options.logRetentionDays,
      throttle: options.apiThrottle,
    });

    // Records what the front door puts straight into the bucket (an S3 event on direct/).
    this.directUploadRecorder = new RegistryFunction(this, 'DirectUploadRecorder', {
      entry: FUNCTION_ENTRIES.directUploadRecorder,
      description: `${registryName}: records blobs uploaded through the front door straight to S3`,
      memorySizeMb: 256,
      logRetentionDays: options.logRetentionDays,
      environment: environmentOf({
        TABLE_NAME: this.metadata.table.tableName,
        BUCKET_NAME: this.blobs.bucket.bucketName,
        UPLOAD_SESSION_TTL_SECONDS: String(options.uploadSessionTtlSeconds),
      }),
    });
    this.directUploadRecorder.addToRolePolicy(...directUploadRecorderStatements(this.metadata.table.tableArn, this.blobs.bucket.bucketArn));
    acknowledgeWildcardResources(
      this.directUploadRecorder.role,
      directObjectArns(this.blobs.bucket.bucketArn),
      'Objects the front door wrote are named by digest and upload id under direct/; the grant is read and delete under that prefix only.',
    );

    // Upload bodies of any size (API Gateway takes at most 10 MB per request, Lambda ~4.4 MiB):
    // behind the front door (uploadGateway=true), or on a host name of its own. Upload Locations
    // carry a ticket signed with the secret the token key resource keeps.
    const ticketSecretParameterName = uploadTicketSecretParameterName(registryName);
    if (options.uploadGateway) {
      this.uploadGateway = new UploadGateway(this, 'UploadGateway', {
        domainName: options.uploadGateway.domainName,
        behindFrontDoor: options.uploadGateway.behindFrontDoor ? { originSecretParameterName: originSecretParameterName(registryName) } : undefined,
        hostedZone: options.uploadGateway.hostedZone,
        certificateArn: options.uploadGateway.certificateArn,
        tableName: this.metadata.table.tableName,
        tableArn: this.metadata.table.tableArn,
        bucketName: this.blobs.bucket.bucketName,
        bucketArn: this.blobs.bucket.bucketArn,
        // The front door's URL, known once it exists (it needs the gateway's load balancer first).
        registryUrl: Lazy.string({ produce: () => this.registryUrl }),
        ticketSecretParameterName,
        // The secret rotates with the token key pair: new tasks then read the new one.
        ticketSecretGeneration: options.tokenKeyGeneration,
        uploadSessionTtlSeconds: options.uploadSessionTtlSeconds,
        logRetentionDays: options.logRetentionDays,
      });
    }

    this.frontDoor = new FrontDoor(this, 'FrontDoor', {
      registryName,
      apiEndpoint: this.api.httpApi.apiEndpoint,
      primaryRegion: this.region,
      replicaApiEndpoints: props.replicaApiEndpoints,
      bucket: this.blobs.bucket,
      recorder: this.directUploadRecorder.handler,
      gatewayLoadBalancer: options.uploadGateway?.behindFrontDoor ? this.uploadGateway?.loadBalancer : undefined,
      dockerMirror: options.dockerMirror,
      domain: options.customDomain && {
        domainName: options.customDomain.domainName,
        hostedZone: options.customDomain.hostedZone,
        certificate: props.frontDoorCertificate ?? frontDoorCertificate(this, options.customDomain),
      },
    });
    this.registryUrl = this.frontDoor.url;

    this.tokenKeys = new TokenKeys(this, 'TokenKeys', {
      registryName,
      keyGeneration: options.tokenKeyGeneration,
      logRetentionDays: options.logRetentionDays,
      // The same resource generates the ticket secret and the origin secret (SecureStrings, never
      // in the template) and writes both to the front door's KeyValueStore.
      uploadTicketSecret: true,
      frontDoor: { originSecretParameterName: originSecretParameterName(registryName), keyValueStore: this.frontDoor.keyValueStore },
    });
    const authEnvironment = tokenAuthEnvironment(this.registryUrl, options);
    const originSecretArn = parameterArn(this, originSecretParameterName(registryName));
    const ticketSecretArn = parameterArn(this, this.tokenKeys.uploadTicketSecretParameterName!);
    const frontDoorEnvironment = {
      REGISTRY_FRONT_DOOR: true,
      ORIGIN_SECRET_PARAMETER: originSecretParameterName(registryName),
      // The Docker Hub mirror's own URL (its token realm), with `dockerMirror` only.
      DOCKER_MIRROR_BASE_URL: this.frontDoor.mirror?.url,
    } as const;

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
      environment: environmentOf({
        TABLE_NAME: this.metadata.table.tableName,
        BUCKET_NAME: this.blobs.bucket.bucketName,
        PRESIGN_EXPIRY_SECONDS: String(options.presignExpirySeconds),
        UPLOAD_SESSION_TTL_SECONDS: String(options.uploadSessionTtlSeconds),
        ...authEnvironment,
        TOKEN_VERIFICATION_KEY_PARAMETER: this.tokenKeys.verificationKeyParameterName,
        ...frontDoorEnvironment,
        // Upload Locations carry tickets the front door's function checks.
        UPLOAD_TICKET_SECRET_PARAMETER: this.tokenKeys.uploadTicketSecretParameterName,
        ...pullsEnvironment(options),
      }),
    });
    this.registryFunction.addToRolePolicy(
      ...registryTableStatements(this.metadata.table.tableArn),
      ...registryBucketStatements(this.blobs.bucket.bucketArn),
      // The public key only: the registry verifies tokens and can never sign one.
      readParameterStatement('TokenVerificationKeyRead', this.tokenKeys.verificationKeyParameterArn),
      readParameterStatement('OriginSecretRead', originSecretArn),
      secureParameterKeyStatement(this, 'OriginSecretDecrypt', 'kms:Decrypt', originSecretArn),
      readParameterStatement('UploadTicketSecretRead', ticketSecretArn),
      secureParameterKeyStatement(this, 'UploadTicketSecretDecrypt', 'kms:Decrypt', ticketSecretArn),
    );
    // Functions read the key once per execution environment: only after the key resource exists
    // (or was rotated) may they be created (or updated and restarted).
    this.registryFunction.node.addDependency(this.tokenKeys.resource);
    acknowledgeWildcardResources(
      this.registryFunction.role,
      [...registryObjectArns(this.blobs.bucket.bucketArn), ...directObjectArns(this.blobs.bucket.bucketArn)],
      'Objects are named by content digest or upload id under the blobs/, uploads/, manifests/ and direct/ prefixes; the grant is limited to those prefixes and to the actions the function performs.',
    );
    acknowledgeWildcardResources(
      this.registryFunction.role,
      [kmsKeysArn(this)],
      'The AWS managed key aws/ssm has no id known at synth time; the statements only let Parameter Store decrypt the origin secret and upload ticket secret parameters (kms:ViaService and kms:EncryptionContext:PARAMETER_ARN conditions).',
    );

    this.api.routeDistributionApi(this.registryFunction.handler);

    if (this.uploadGateway) {
      this.uploadGateway.configureRegistryFunction(this.registryFunction.role, this.registryFunction.handler);
      // The task reads the secret at start: only after the resource wrote (or rotated) it may ECS
      // start tasks, or the first ones would fail and trip the deployment circuit breaker. (The
      // registry function already waits for the resource.)
      this.uploadGateway.service.node.addDependency(this.tokenKeys.resource);
    }

    // The Docker token endpoint: checks logins (Cognito users, robots) and signs registry tokens.
    this.tokenFunction = new RegistryFunction(this, 'TokenFunction', {
      entry: FUNCTION_ENTRIES.tokenEndpoint,
      description: `${registryName}: Docker token endpoint`,
      memorySizeMb: TOKEN_FUNCTION_MEMORY_MB,
      logRetentionDays: options.logRetentionDays,
      environment: environmentOf({
        ...authEnvironment,
        ...frontDoorEnvironment,
        TOKEN_SIGNING_KEY_PARAMETER: this.tokenKeys.signingKeyParameterName,
        USER_POOL_ID: this.users.userPool.userPoolId,
        USER_POOL_CLIENT_ID: this.users.tokenEndpointClient.userPoolClientId,
        TABLE_NAME: this.metadata.table.tableName,
        // Required by the shared configuration; the token endpoint never touches the bucket.
        BUCKET_NAME: this.blobs.bucket.bucketName,
      }),
    });
    this.tokenFunction.addToRolePolicy(
      ...tokenEndpointStatements(this, {
        userPoolArn: this.users.userPool.userPoolArn,
        tableArn: this.metadata.table.tableArn,
        signingKeyParameterArn: this.tokenKeys.signingKeyParameterArn,
      }),
      readParameterStatement('OriginSecretRead', originSecretArn),
      secureParameterKeyStatement(this, 'OriginSecretDecrypt', 'kms:Decrypt', originSecretArn),
    );
    acknowledgeWildcardResources(
      this.tokenFunction.role,
      [kmsKeysArn(this)],
      'The AWS managed key aws/ssm has no id known at synth time; the statements only let Parameter Store decrypt the token signing key and origin secret parameters for this function (kms:ViaService and kms:EncryptionContext:PARAMETER_ARN conditions).',
    );
    this.tokenFunction.node.addDependency(this.tokenKeys.resource);
    this.api.routeTokenEndpoint(this.tokenFunction.handler);

    this.maintenance = new RegistryMaintenance(this, 'Maintenance', {
      registryName,
      entry: FUNCTION_ENTRIES.maintenance,
      tableName: this.metadata.table.tableName,
      tableArn: this.metadata.table.tableArn,
      bucketName: this.blobs.bucket.bucketName,
      bucketArn: this.blobs.bucket.bucketArn,
      schedule: options.maintenanceSchedule,
      gcGraceSeconds: options.gcGraceSeconds,
      logRetentionDays: options.logRetentionDays,
    });

    this.events = new RegistryEvents(this, 'Events', {
      registryName,
      entry: FUNCTION_ENTRIES.eventDispatcher,
      table: this.metadata.table,
      bucketName: this.blobs.bucket.bucketName,
      publicBaseUrl: this.registryUrl,
      logRetentionDays: options.logRetentionDays,
      pullEvents: options.pullEvents,
    });

    this.auditLog = new RegistryAuditLog(this, 'AuditLog', {
      registryName,
      tableArn: this.metadata.table.tableArn,
      retentionDays: options.auditRetentionDays,
    });
    for (const recorder of [this.registryFunction, this.tokenFunction]) this.auditLog.records(recorder);
    this.auditLog.forwards(this.events.function);

    this.pullThrough = new PullThrough(this, 'PullThrough', {
      registryName,
      tableName: this.metadata.table.tableName,
      tableArn: this.metadata.table.tableArn,
      bucketName: this.blobs.bucket.bucketName,
      bucketArn: this.blobs.bucket.bucketArn,
      uploadSessionTtlSeconds: options.uploadSessionTtlSeconds,
      logRetentionDays: options.logRetentionDays,
      apiFunction: this.registryFunction,
    });

    this.observability = new RegistryObservability(this, 'Observability', {
      dashboardName: registryName,
      httpApi: this.api.httpApi,
      registryFunction: this.registryFunction.handler,
      tableName: this.metadata.table.tableName,
      serverErrorRateAlarmPercent: options.serverErrorRateAlarmPercent,
      alarmEmail: options.alarmEmail,
      tableReplicaRegions: options.replicaRegions,
      tokenFunction: this.tokenFunction.handler,
      maintenanceFunction: this.maintenance.function.handler,
    });

    // The CLIs in scripts/ read these outputs by name.
    new CfnOutput(this, 'RegistryUrl', { value: this.registryUrl, description: 'Base URL of the registry (docker login <host>)' });
    new CfnOutput(this, 'DistributionId', {
      value: this.frontDoor.distribution.distributionId,
      description: 'The front door (CloudFront distribution)',
    });
    new CfnOutput(this, 'UserPoolId', { value: this.users.userPool.userPoolId, description: 'Cognito user pool of registry users' });
    new CfnOutput(this, 'UserPoolClientId', {
      value: this.users.tokenEndpointClient.userPoolClientId,
      description: 'App client the token endpoint signs users in with',
    });
    new CfnOutput(this, 'TableName', { value: this.metadata.table.tableName, description: 'DynamoDB table of registry metadata' });
    new CfnOutput(this, 'BucketName', { value: this.blobs.bucket.bucketName, description: 'S3 bucket of blobs and large manifests' });
    if (this.frontDoor.mirror) {
      new CfnOutput(this, 'DockerMirrorUrl', {
        value: this.frontDoor.mirror.url,
        description: "The Docker Hub mirror (dockerd's registry-mirrors); unprefixed names pull through the Docker Hub upstream",
      });
    }
    if (this.uploadGateway && !options.uploadGateway?.behindFrontDoor) {
      new CfnOutput(this, 'UploadGatewayUrl', {
        value: this.uploadGateway.url,
        description: 'Base URL of the upload gateway that upload Locations point to (not a docker login host)',
      });
    }
  }
}

/**
 * The custom domain's certificate for CloudFront when the stack is in us-east-1 (CloudFront takes
 * certificates from there only): an existing one, or one validated in the hosted zone.
 */
export function frontDoorCertificate(scope: Construct, domain: NonNullable<RegistryOptions['customDomain']>): acm.ICertificate {
  if (domain.certificateArn) return acm.Certificate.fromCertificateArn(scope, 'FrontDoorCertificate', domain.certificateArn);
  if (Stack.of(scope).region !== 'us-east-1') throw new Error('the front door certificate must be created in us-east-1 (lib/registry-app.ts)');
  if (!domain.hostedZone) throw new Error('a custom domain needs a hosted zone or a certificate ARN');
  return new acm.Certificate(scope, 'FrontDoorCertificate', {
    domainName: domain.domainName,
    subjectAlternativeNames: domain.alternativeNames ? [...domain.alternativeNames] : undefined,
    validation: acm.CertificateValidation.fromDns(
      route53.HostedZone.fromHostedZoneAttributes(scope, 'FrontDoorHostedZone', {
        hostedZoneId: domain.hostedZone.id,
        zoneName: domain.hostedZone.name,
      }),
    ),
  });
}
