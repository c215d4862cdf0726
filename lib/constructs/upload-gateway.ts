import { Duration, IgnoreMode, RemovalPolicy } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as targets from 'aws-cdk-lib/aws-route53-targets';
import { Construct } from 'constructs';
import { acknowledgeNag, acknowledgeWildcardResources } from '../nag-acknowledgements.js';
import { PROJECT_ROOT } from '../naming.js';
import { kmsKeysArn, parameterArn, readParameterStatement, secureParameterKeyStatement } from './auth-permissions.js';
import { BLOB_PREFIX, UPLOAD_STAGING_PREFIX } from './blob-bucket.js';
import { registryObjectArns } from './storage-permissions.js';
import { environmentOf } from '../../registry/config/environment.js';

/** The address range of the gateway's own VPC (CDK's default, spelt out so that rules can name it). */
const GATEWAY_VPC_CIDR = '10.0.0.0/16';

/** The port the gateway container listens on (functions/upload-gateway.ts reads PORT). */
export const UPLOAD_GATEWAY_PORT = 8080;

/**
 * The longest idle timeout an ALB allows. A multi-GB layer is one request; the connection is
 * never idle while bytes flow, but the digest check and S3's CompleteMultipartUpload at the end
 * of a big upload take a while, and the client waits on the same connection for the answer.
 */
export const ALB_IDLE_TIMEOUT = Duration.seconds(4000);

export interface UploadGatewayProps {
  /** The gateway's own host name, e.g. `uploads.registry.example.com`; not with `behindFrontDoor`. */
  readonly domainName?: string;
  /**
   * Behind the registry's front door (docs/front-door.md): an internal load balancer in isolated
   * subnets, plain HTTP inside the VPC, reached only through a CloudFront VPC origin; no host
   * name, certificate or DNS record of its own. The gateway then checks the origin secret.
   */
  readonly behindFrontDoor?: { readonly originSecretParameterName: string };
  /** Route 53 zone of `domainName`: the certificate is validated there and an alias record added. */
  readonly hostedZone?: { readonly id: string; readonly name: string };
  /** An existing ACM certificate for `domainName` (DNS is then up to you). */
  readonly certificateArn?: string;
  /** Defaults to a new two-AZ VPC with public subnets only (no NAT gateway) and free S3/DynamoDB endpoints. */
  readonly vpc?: ec2.IVpc;
  readonly tableName: string;
  readonly tableArn: string;
  readonly bucketName: string;
  readonly bucketArn: string;
  /** The registry's public base URL (PUBLIC_BASE_URL), named in the gateway's refusals and blob Locations. */
  readonly registryUrl: string;
  /** Name (starting with `/`) of the SSM SecureString parameter holding the ticket secret (at least 32 characters). */
  readonly ticketSecretParameterName: string;
  /** @default 3600 */
  readonly ticketSeconds?: number;
  /**
   * Changes whenever the ticket secret is replaced (the registry stack passes its token key
   * generation, with which the secret rotates). The task reads the secret once at start; a new
   * value here gives the container a new environment, so ECS starts fresh tasks that read it.
   * @default none
   */
  readonly ticketSecretGeneration?: number;
  readonly uploadSessionTtlSeconds: number;
  readonly logRetentionDays: number;
  /** Fargate CPU units. @default 256 (0.25 vCPU) */
  readonly cpu?: number;
  /** Fargate memory: each upload in flight holds about 32 MiB (two 16 MiB parts). @default 512 */
  readonly memoryLimitMiB?: number;
  /** The build context with the Dockerfile. @default the project root */
  readonly imageDirectory?: string;
}

/**
 * The upload gateway (docs/upload-gateway.md): the registry's own handlers in a container on
 * Fargate (ARM64) behind an internet-facing ALB with its own host name, only for upload bodies.
 * API Gateway takes at most 10 MB per request and Lambda about 4.4 MiB of raw body, while a
 * stock `docker push` sends a whole layer in one request; with the gateway configured, the
 * registry function answers upload Locations on this host, carrying a signed ticket.
 *
 * Wiring into a stack: create it, then `gateway.configureRegistryFunction(fn.role, env)` adds the
 * environment the registry function needs (UPLOAD_GATEWAY_URL, the ticket secret parameter) and
 * lets it read the secret. RegistryStack does so when `uploadGatewayDomainName` is set, with the
 * secret kept by its token key resource (lib/constructs/token-keys.ts).
 */
export class UploadGateway extends Construct {
  /** `https://<domainName>`: the UPLOAD_GATEWAY_URL of the registry function. */
  readonly url: string;
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly service: ecs.FargateService;
  readonly taskRole: iam.Role;
  readonly logGroup: logs.LogGroup;
  /** Not behind the front door. */
  readonly certificate?: acm.ICertificate;
  readonly image: ecrAssets.DockerImageAsset;
  private readonly ticketSecretParameterArn: string;
  private readonly ticketSeconds: number;
  private readonly ticketSecretParameterName: string;

  constructor(scope: Construct, id: string, props: UploadGatewayProps) {
    super(scope, id);
    const frontDoor = props.behindFrontDoor;
    if (!frontDoor && !props.domainName) throw new Error('the upload gateway needs its host name, or to be behind the front door');
    // Behind the front door, upload Locations stay on the registry's own host.
    this.url = frontDoor ? props.registryUrl : `https://${props.domainName}`;
    this.ticketSeconds = props.ticketSeconds ?? 3600;
    this.ticketSecretParameterName = props.ticketSecretParameterName;
    this.ticketSecretParameterArn = parameterArn(this, props.ticketSecretParameterName);

    const vpc =
      props.vpc ??
      new ec2.Vpc(this, 'Vpc', {
        ipAddresses: ec2.IpAddresses.cidr(GATEWAY_VPC_CIDR),
        maxAzs: 2,
        // One task in a public subnet with a public address pulls its image and reaches AWS
        // APIs without a NAT gateway (~$33/month) or interface endpoints (~$7/month each).
        natGateways: 0,
        subnetConfiguration: [
          { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
          // CloudFront VPC origins reach load balancers in private subnets; nothing else lives there.
          ...(frontDoor ? [{ name: 'origin', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 }] : []),
        ],
        // Free, and keep the bulk of the traffic (S3 parts) on AWS's network.
        gatewayEndpoints: {
          S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
          DynamoDB: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
        },
      });

    const hostedZone = props.hostedZone
      ? route53.HostedZone.fromHostedZoneAttributes(this, 'HostedZone', { hostedZoneId: props.hostedZone.id, zoneName: props.hostedZone.name })
      : undefined;
    if (frontDoor) {
      // No certificate: TLS ends at CloudFront, which reaches the load balancer inside the VPC.
    } else if (props.certificateArn) {
      this.certificate = acm.Certificate.fromCertificateArn(this, 'Certificate', props.certificateArn);
    } else if (hostedZone && props.domainName) {
      this.certificate = new acm.Certificate(this, 'Certificate', {
        domainName: props.domainName,
        validation: acm.CertificateValidation.fromDns(hostedZone),
      });
    } else {
      throw new Error('the upload gateway needs a hosted zone or a certificate ARN for its host name');
    }

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetentionDays as logs.RetentionDays,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.taskRole = new iam.Role(this, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Upload gateway: upload sessions in the registry table and bucket, and the ticket secret',
    });
    for (const statement of uploadGatewayStatements(this, props, this.ticketSecretParameterArn)) this.taskRole.addToPolicy(statement);
    if (frontDoor) {
      const originSecretArn = parameterArn(this, frontDoor.originSecretParameterName);
      this.taskRole.addToPolicy(readParameterStatement('OriginSecretRead', originSecretArn));
      this.taskRole.addToPolicy(secureParameterKeyStatement(this, 'OriginSecretDecrypt', 'kms:Decrypt', originSecretArn));
    }
    acknowledgeWildcardResources(
      this.taskRole,
      uploadObjectArns(props.bucketArn),
      'Upload staging objects and blob objects are named by upload id under the uploads/ and blobs/ prefixes; the grant is limited to those prefixes and to the actions an upload performs.',
    );
    acknowledgeTicketSecretKey(this.taskRole);

    const memoryLimitMiB = props.memoryLimitMiB ?? 512;
    const taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: props.cpu ?? 256,
      memoryLimitMiB,
      runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.ARM64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
      taskRole: this.taskRole,
    });

    this.image = new ecrAssets.DockerImageAsset(this, 'Image', {
      directory: props.imageDirectory ?? PROJECT_ROOT,
      file: 'Dockerfile',
      platform: ecrAssets.Platform.LINUX_ARM64,
      // .dockerignore lets only the sources the image needs into the build context, and, read
      // the way Docker reads it, into the asset's fingerprint and staging copy too.
      ignoreMode: IgnoreMode.DOCKER,
    });

    taskDefinition.addContainer('Gateway', {
      image: ecs.ContainerImage.fromDockerImageAsset(this.image),
      portMappings: [{ containerPort: UPLOAD_GATEWAY_PORT, protocol: ecs.Protocol.TCP }],
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'upload-gateway', logGroup: this.logGroup }),
      readonlyRootFilesystem: true,
      // Fargate's longest: lets uploads in flight finish when a deployment replaces the task.
      stopTimeout: Duration.seconds(120),
      environment: environmentOf({
        PORT: String(UPLOAD_GATEWAY_PORT),
        TABLE_NAME: props.tableName,
        BUCKET_NAME: props.bucketName,
        UPLOAD_SESSION_TTL_SECONDS: String(props.uploadSessionTtlSeconds),
        UPLOAD_GATEWAY_URL: this.url,
        UPLOAD_TICKET_SECRET_PARAMETER: props.ticketSecretParameterName,
        UPLOAD_TICKET_TTL_SECONDS: String(this.ticketSeconds),
        PUBLIC_BASE_URL: props.registryUrl,
        // The gateway takes as many uploads at once as fit in this (functions/upload-gateway.ts).
        UPLOAD_GATEWAY_MEMORY_MIB: String(memoryLimitMiB),
        ...(frontDoor ? { REGISTRY_FRONT_DOOR: true, ORIGIN_SECRET_PARAMETER: frontDoor.originSecretParameterName } : {}),
        // Not read by the code: see ticketSecretGeneration.
        ...(props.ticketSecretGeneration !== undefined ? { UPLOAD_TICKET_SECRET_GENERATION: String(props.ticketSecretGeneration) } : {}),
      }),
    });
    acknowledgeNag(
      taskDefinition,
      'AwsSolutions-ECS2',
      'The environment holds names and URLs only; the ticket secret is read from its SSM SecureString parameter at start-up.',
    );
    acknowledgeNag(
      taskDefinition,
      'AwsSolutions-IAM5[Resource::*]',
      'The execution role is generated by CDK: ecr:GetAuthorizationToken has no resource-level permissions.',
    );

    const cluster = new ecs.Cluster(this, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.DISABLED });
    acknowledgeNag(
      cluster,
      'AwsSolutions-ECS4',
      'One task serving upload bodies: its logs and the ALB metrics suffice; Container Insights would cost more than the service.',
    );

    const albSecurityGroup = new ec2.SecurityGroup(this, 'LoadBalancerSecurityGroup', {
      vpc,
      description: frontDoor
        ? 'Upload gateway load balancer: HTTP from the front door VPC origin'
        : 'Upload gateway load balancer: HTTPS from anywhere',
      allowAllOutbound: false,
    });
    if (frontDoor) {
      // CloudFront's VPC origin connects from network interfaces it places in the VPC's subnets.
      albSecurityGroup.addIngressRule(
        ec2.Peer.ipv4(props.vpc ? vpc.vpcCidrBlock : GATEWAY_VPC_CIDR),
        ec2.Port.tcp(80),
        'HTTP from the CloudFront VPC origin',
      );
    } else {
      albSecurityGroup.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS from container clients');
      acknowledgeNag(
        albSecurityGroup,
        'AwsSolutions-EC23',
        'A public registry endpoint: container clients push from anywhere; every request needs a signed ticket.',
      );
    }
    const taskSecurityGroup = new ec2.SecurityGroup(this, 'TaskSecurityGroup', {
      vpc,
      description: 'Upload gateway task: only from its load balancer',
      // ECR, SSM, S3 and DynamoDB over HTTPS.
      allowAllOutbound: true,
    });

    this.service = new ecs.FargateService(this, 'Service', {
      cluster,
      taskDefinition,
      desiredCount: 1,
      // A deployment starts the new task before it stops the old one: no gap for uploads.
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { rollback: true },
      assignPublicIp: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      securityGroups: [taskSecurityGroup],
      healthCheckGracePeriod: Duration.seconds(60),
    });

    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'LoadBalancer', {
      vpc,
      internetFacing: !frontDoor,
      securityGroup: albSecurityGroup,
      idleTimeout: ALB_IDLE_TIMEOUT,
      dropInvalidHeaderFields: true,
      vpcSubnets: { subnetType: frontDoor ? ec2.SubnetType.PRIVATE_ISOLATED : ec2.SubnetType.PUBLIC },
    });
    acknowledgeNag(
      this.loadBalancer,
      'AwsSolutions-ELB2',
      'Tickets travel in the query string, so access logs would store live credentials; the gateway logs every request itself, without query strings.',
    );
    const listener = this.certificate
      ? this.loadBalancer.addListener('Https', {
          port: 443,
          protocol: elbv2.ApplicationProtocol.HTTPS,
          certificates: [this.certificate],
          sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
          open: false,
        })
      : this.loadBalancer.addListener('Http', { port: 80, protocol: elbv2.ApplicationProtocol.HTTP, open: false });
    listener.addTargets('Gateway', {
      port: UPLOAD_GATEWAY_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [this.service.loadBalancerTarget({ containerName: 'Gateway', containerPort: UPLOAD_GATEWAY_PORT })],
      healthCheck: { path: '/healthz', healthyHttpCodes: '200', interval: Duration.seconds(30), timeout: Duration.seconds(5) },
      // Matches the container's stop timeout: uploads in flight get as long as Fargate allows.
      deregistrationDelay: Duration.seconds(120),
    });
    taskSecurityGroup.addIngressRule(albSecurityGroup, ec2.Port.tcp(UPLOAD_GATEWAY_PORT), 'From the upload gateway load balancer');
    albSecurityGroup.addEgressRule(taskSecurityGroup, ec2.Port.tcp(UPLOAD_GATEWAY_PORT), 'To the upload gateway tasks');

    if (hostedZone && props.domainName && !frontDoor) {
      new route53.ARecord(this, 'Alias', {
        zone: hostedZone,
        recordName: props.domainName,
        target: route53.RecordTarget.fromAlias(new targets.LoadBalancerTarget(this.loadBalancer)),
      });
    }
    if (!props.vpc)
      acknowledgeNag(
        vpc,
        'AwsSolutions-VPC7',
        'The VPC holds one stateless task behind its load balancer; flow logs would cost more than the service.',
      );
  }

  /**
   * The registry function's side: the environment that makes its upload Locations point here
   * with a ticket, and read access to the ticket secret.
   */
  configureRegistryFunction(role: iam.IRole, environment: { addEnvironment(key: string, value: string): unknown }): void {
    const variables = environmentOf({
      UPLOAD_GATEWAY_URL: this.url,
      UPLOAD_TICKET_SECRET_PARAMETER: this.ticketSecretParameterName,
      UPLOAD_TICKET_TTL_SECONDS: this.ticketSeconds,
    });
    for (const [name, value] of Object.entries(variables)) environment.addEnvironment(name, value);
    for (const statement of ticketSecretStatements(this, this.ticketSecretParameterArn)) role.addToPrincipalPolicy(statement);
    acknowledgeTicketSecretKey(role);
  }
}

function acknowledgeTicketSecretKey(role: iam.IRole): void {
  acknowledgeWildcardResources(
    role,
    [kmsKeysArn(role)],
    'The AWS managed key aws/ssm has no id known at synth time; the statement only lets Parameter Store decrypt the upload ticket secret parameter (kms:ViaService and kms:EncryptionContext:PARAMETER_ARN conditions).',
  );
}

/** Upload staging objects and the blob objects uploads assemble. */
export function uploadObjectArns(bucketArn: string): string[] {
  return registryObjectArns(bucketArn, [BLOB_PREFIX, UPLOAD_STAGING_PREFIX]);
}

function ticketSecretStatements(scope: Construct, secretParameterArn: string): iam.PolicyStatement[] {
  return [
    readParameterStatement('UploadTicketSecretRead', secretParameterArn),
    secureParameterKeyStatement(scope, 'UploadTicketSecretDecrypt', 'kms:Decrypt', secretParameterArn),
  ];
}

/**
 * What finishing an upload session does, and nothing more:
 * - DynamoDB: the session item (`UPLOAD#`), the blob item (`BLOB#`) and the repository's blob link
 *   (`REPO#`), read, written, touched and deleted; never a query, a scan, the access policy,
 *   robots or retention rules. TransactWriteItems (touch + link) needs UpdateItem and PutItem.
 * - S3: multipart uploads and tail objects under `uploads/` and `blobs/` (PutObject covers
 *   CreateMultipartUpload, UploadPart and CompleteMultipartUpload; GetObject reads a tail back);
 *   ListBucket so that a missing key answers 404. No manifests.
 * - The ticket secret parameter.
 */
export function uploadGatewayStatements(
  scope: Construct,
  arns: { tableArn: string; bucketArn: string },
  secretParameterArn: string,
): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'UploadSessionsAndBlobRecords',
      actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
      resources: [arns.tableArn],
      conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['UPLOAD#*', 'BLOB#*', 'REPO#*'] } },
    }),
    new iam.PolicyStatement({
      sid: 'UploadObjects',
      actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
      resources: uploadObjectArns(arns.bucketArn),
    }),
    new iam.PolicyStatement({
      sid: 'UploadBucketMissingKeysAre404',
      actions: ['s3:ListBucket'],
      resources: [arns.bucketArn],
    }),
    ...ticketSecretStatements(scope, secretParameterArn),
  ];
}
