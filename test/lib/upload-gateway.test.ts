import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/naming.js';
import { UploadGateway } from '../../lib/constructs/upload-gateway.js';
import { awsSolutionsViolations } from './support/synthesize.js';

const TEST_ENV = { account: '123456789012', region: 'us-east-1' };
const TABLE_ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/oci-registry-metadata';
const BUCKET_ARN = 'arn:aws:s3:::oci-registry-blobs-123456789012-us-east-1';
const SECRET_PARAMETER = '/oci-registry/upload-ticket-secret';

interface Synthesized {
  template: Template;
  nagViolations: Array<{ rule: string; path: string }>;
  assetDirectory: string;
  outdir: string;
}

/** The construct in a stack of its own, with a stand-in registry function to wire, checked by cdk-nag. */
function synthesize(): Synthesized {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'upload-gateway-cdk-test-'));
  const app = new App({ outdir, context: { '@aws-cdk/core:failSynthOnValidationErrors': false } });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const stack = new Stack(app, 'GatewayTest', { env: TEST_ENV });
  const gateway = new UploadGateway(stack, 'UploadGateway', {
    domainName: 'uploads.registry.example.com',
    hostedZone: { id: 'Z0123456789ABCDEFGHIJ', name: 'example.com' },
    tableName: 'oci-registry-metadata',
    tableArn: TABLE_ARN,
    bucketName: 'oci-registry-blobs-123456789012-us-east-1',
    bucketArn: BUCKET_ARN,
    registryUrl: 'https://registry.example.com',
    ticketSecretParameterName: SECRET_PARAMETER,
    uploadSessionTtlSeconds: 86_400,
    logRetentionDays: 30,
  });
  const registryRole = new iam.Role(stack, 'RegistryRole', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  const registryFunction = new lambda.Function(stack, 'RegistryFunction', {
    runtime: lambda.Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: lambda.Code.fromInline('export const handler = async () => ({});'),
    role: registryRole,
  });
  Validations.of(registryFunction).acknowledge({ id: 'AwsSolutions-L1', reason: 'A stand-in for the registry function in this test.' });
  gateway.configureRegistryFunction(registryRole, registryFunction);
  const assembly = app.synth();

  const nagViolations = awsSolutionsViolations(assembly.directory);
  const assetDirectory = path.join(assembly.directory, `asset.${gateway.image.assetHash}`);
  return { template: Template.fromStack(stack), nagViolations, assetDirectory, outdir };
}

function statementsOf(template: Template, rolePrefix: string): Array<Record<string, unknown>> {
  const policies = template.findResources('AWS::IAM::Policy');
  return Object.values(policies)
    .filter((policy) => (policy.Properties.Roles as Array<{ Ref: string }>).some((role) => role.Ref.startsWith(rolePrefix)))
    .flatMap((policy) => policy.Properties.PolicyDocument.Statement as Array<Record<string, unknown>>);
}

describe('UploadGateway construct', () => {
  let synthesized: Synthesized;
  let template: Template;

  beforeAll(() => {
    synthesized = synthesize();
    template = synthesized.template;
  }, 120_000);

  afterAll(() => {
    if (synthesized) fs.rmSync(synthesized.outdir, { recursive: true, force: true });
  });

  it('passes the AwsSolutions checks', () => {
    expect(synthesized.nagViolations).toEqual([]);
  });

  it('runs one ARM64 Fargate task of 0.25 vCPU and 512 MiB, replaced without a gap', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '256',
      Memory: '512',
      RequiresCompatibilities: ['FARGATE'],
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
    });
    template.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      DesiredCount: 1,
      DeploymentConfiguration: Match.objectLike({
        MinimumHealthyPercent: 100,
        MaximumPercent: 200,
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
      }),
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'ENABLED' }) },
    });
  });

  it('gives the container the environment the gateway reads, and its image from the repository Dockerfile', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [
        Match.objectLike({
          Name: 'Gateway',
          PortMappings: [{ ContainerPort: 8080, Protocol: 'tcp' }],
          ReadonlyRootFilesystem: true,
          StopTimeout: 120,
          Image: Match.objectLike({ 'Fn::Sub': Match.stringLikeRegexp('cdk-hnb659fds-container-assets') }),
          Environment: Match.arrayWith([
            { Name: 'PORT', Value: '8080' },
            { Name: 'TABLE_NAME', Value: 'oci-registry-metadata' },
            { Name: 'BUCKET_NAME', Value: 'oci-registry-blobs-123456789012-us-east-1' },
            { Name: 'UPLOAD_GATEWAY_URL', Value: 'https://uploads.registry.example.com' },
            { Name: 'UPLOAD_TICKET_SECRET_PARAMETER', Value: SECRET_PARAMETER },
            { Name: 'UPLOAD_TICKET_TTL_SECONDS', Value: '3600' },
            { Name: 'PUBLIC_BASE_URL', Value: 'https://registry.example.com' },
            { Name: 'UPLOAD_GATEWAY_MEMORY_MIB', Value: '512' },
          ]),
        }),
      ],
    });
  });

  it('stages only the sources for the image: no node_modules, no cdk.out', () => {
    const staged = fs.readdirSync(synthesized.assetDirectory);
    expect(staged).toEqual(expect.arrayContaining(['Dockerfile', 'package.json', 'package-lock.json', 'functions']));
    for (const excluded of ['node_modules', 'cdk.out', '.git', 'test']) expect(staged).not.toContain(excluded);
    expect(fs.existsSync(path.join(PROJECT_ROOT, '.dockerignore'))).toBe(true);
  });

  it('puts an internet-facing ALB with the longest idle timeout in front, HTTPS only, health-checked on /healthz', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: 'internet-facing',
      Type: 'application',
      LoadBalancerAttributes: Match.arrayWith([
        { Key: 'idle_timeout.timeout_seconds', Value: '4000' },
        { Key: 'routing.http.drop_invalid_header_fields.enabled', Value: 'true' },
      ]),
    });
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::Listener', 1);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 443,
      Protocol: 'HTTPS',
      Certificates: [{ CertificateArn: { Ref: Match.stringLikeRegexp('^UploadGatewayCertificate') } }],
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Port: 8080,
      Protocol: 'HTTP',
      TargetType: 'ip',
      HealthCheckPath: '/healthz',
      Matcher: { HttpCode: '200' },
      TargetGroupAttributes: Match.arrayWith([{ Key: 'deregistration_delay.timeout_seconds', Value: '120' }]),
    });
  });

  it('has its own host name: a DNS-validated certificate and an alias record', () => {
    template.hasResourceProperties('AWS::CertificateManager::Certificate', {
      DomainName: 'uploads.registry.example.com',
      ValidationMethod: 'DNS',
    });
    template.hasResourceProperties('AWS::Route53::RecordSet', {
      Type: 'A',
      Name: 'uploads.registry.example.com.',
      HostedZoneId: 'Z0123456789ABCDEFGHIJ',
      AliasTarget: Match.objectLike({ DNSName: Match.anyValue() }),
    });
  });

  it('lets HTTPS in from anywhere to the ALB, and only the ALB in to the task', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: 'Upload gateway load balancer: HTTPS from anywhere',
      SecurityGroupIngress: [Match.objectLike({ CidrIp: '0.0.0.0/0', FromPort: 443, ToPort: 443 })],
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      FromPort: 8080,
      ToPort: 8080,
      SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^UploadGatewayLoadBalancerSecurityGroup'), 'GroupId'] },
    });
    // No other way in to the task.
    const taskGroups = template.findResources('AWS::EC2::SecurityGroup', {
      Properties: { GroupDescription: 'Upload gateway task: only from its load balancer' },
    });
    expect(Object.values(taskGroups).map((group) => group.Properties.SecurityGroupIngress)).toEqual([undefined]);
  });

  it('creates no NAT gateway, and free gateway endpoints for S3 and DynamoDB', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 2);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway' });
  });

  it('grants the task only what uploads need: sessions, blob records and links, upload objects, the ticket secret', () => {
    const statements = statementsOf(template, 'UploadGatewayTaskRole');
    expect(statements).toContainEqual(
      expect.objectContaining({
        Sid: 'UploadSessionsAndBlobRecords',
        Action: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
        Resource: TABLE_ARN,
        Condition: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['UPLOAD#*', 'BLOB#*', 'REPO#*'] } },
      }),
    );
    expect(statements).toContainEqual(
      expect.objectContaining({
        Sid: 'UploadObjects',
        Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
        Resource: [`${BUCKET_ARN}/blobs/*`, `${BUCKET_ARN}/uploads/*`],
      }),
    );
    expect(statements).toContainEqual(expect.objectContaining({ Sid: 'UploadTicketSecretRead', Action: 'ssm:GetParameter' }));
    expect(statements).toContainEqual(
      expect.objectContaining({
        Sid: 'UploadTicketSecretDecrypt',
        Action: 'kms:Decrypt',
        Condition: {
          StringEquals: {
            'kms:ViaService': { 'Fn::Join': ['', ['ssm.us-east-1.', { Ref: 'AWS::URLSuffix' }]] },
            'kms:EncryptionContext:PARAMETER_ARN': {
              'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:ssm:us-east-1:123456789012:parameter${SECRET_PARAMETER}`]],
            },
          },
        },
      }),
    );
    const actions = statements.flatMap((statement) => [statement.Action].flat() as string[]);
    for (const forbidden of ['dynamodb:Query', 'dynamodb:Scan', 'dynamodb:BatchWriteItem', 's3:*', 'dynamodb:*', 'ssm:PutParameter']) {
      expect(actions).not.toContain(forbidden);
    }
  });

  it('wires the registry function with one call: gateway URL, secret parameter, and read access to it', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: {
          UPLOAD_GATEWAY_URL: 'https://uploads.registry.example.com',
          UPLOAD_TICKET_SECRET_PARAMETER: SECRET_PARAMETER,
          UPLOAD_TICKET_TTL_SECONDS: '3600',
        },
      },
    });
    const statements = statementsOf(template, 'RegistryRole');
    expect(statements.map((statement) => statement.Sid).sort()).toEqual(['UploadTicketSecretDecrypt', 'UploadTicketSecretRead']);
  });
});
