import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { resourceWithIdPrefix, roleStatements, statementsBySid, synthesizeRegistry, type SynthesizedRegistry } from './support/synthesize.js';

const REPLICA_REGIONS = ['eu-west-1', 'ap-northeast-1'];

/** The replicated variant: a primary in us-east-1 and two replica regions, without a custom domain. */
describe('registry with replica regions', () => {
  let registry: SynthesizedRegistry;
  let primary: Template;
  let replicaBucket: Template;
  let replicaApi: Template;

  beforeAll(() => {
    registry = synthesizeRegistry({ replicaRegions: REPLICA_REGIONS });
    primary = registry.template(registry.stacks.primary);
    replicaBucket = registry.template(registry.stacks.replicaBuckets[0]);
    replicaApi = registry.template(registry.stacks.replicaApis[0]);
  }, 120_000);

  it('passes the AwsSolutions checks in every stack', () => {
    expect(registry.nagViolations).toEqual([]);
  });

  it('creates a bucket stack and an API stack per replica region, ordered buckets -> primary -> APIs', () => {
    const { primary: primaryStack, replicaBuckets, replicaApis } = registry.stacks;
    expect(replicaBuckets.map((stack) => [stack.stackName, stack.region])).toEqual([
      ['oci-registry-replica-blobs-eu-west-1', 'eu-west-1'],
      ['oci-registry-replica-blobs-ap-northeast-1', 'ap-northeast-1'],
    ]);
    expect(replicaApis.map((stack) => [stack.stackName, stack.region])).toEqual([
      ['oci-registry-replica-api-eu-west-1', 'eu-west-1'],
      ['oci-registry-replica-api-ap-northeast-1', 'ap-northeast-1'],
    ]);
    expect(primaryStack.dependencies).toEqual(expect.arrayContaining([...replicaBuckets]));
    for (const apiStack of replicaApis) expect(apiStack.dependencies).toContain(primaryStack);
  });

  describe('metadata table', () => {
    it('is a global table with a replica in every replica region, each with PITR and deletion protection', () => {
      const [table] = Object.values(primary.findResources('AWS::DynamoDB::GlobalTable'));
      expect(table.Properties.TableName).toBe('oci-registry-metadata');
      const replicas = table.Properties.Replicas as { Region: string }[];
      expect(replicas.map((replica) => replica.Region).sort()).toEqual(['ap-northeast-1', 'eu-west-1', 'us-east-1']);
      for (const replica of replicas) {
        expect(replica).toMatchObject({
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          DeletionProtectionEnabled: true,
        });
      }
    });
  });

  describe('blob replication', () => {
    it('replicates blobs/, manifests/ and the front door’s direct/ (not uploads/) to each replica bucket, delete markers included', () => {
      const rules = REPLICA_REGIONS.flatMap((region) =>
        ['blobs', 'manifests', 'direct'].map((prefix) =>
          Match.objectLike({
            Id: `${prefix}-to-${region}`,
            Status: 'Enabled',
            Filter: { Prefix: `${prefix}/` },
            DeleteMarkerReplication: { Status: 'Enabled' },
            Destination: { Bucket: `arn:aws:s3:::oci-registry-blobs-123456789012-${region}` },
          }),
        ),
      );
      primary.hasResourceProperties('AWS::S3::Bucket', {
        BucketName: 'oci-registry-blobs-123456789012-us-east-1',
        VersioningConfiguration: { Status: 'Enabled' },
        ReplicationConfiguration: {
          Role: { 'Fn::GetAtt': [Match.stringLikeRegexp('^BlobsReplicationRole'), 'Arn'] },
          Rules: rules,
        },
      });
      const [bucket] = Object.values(primary.findResources('AWS::S3::Bucket'));
      const priorities = bucket.Properties.ReplicationConfiguration.Rules.map((rule: { Priority: number }) => rule.Priority);
      expect(new Set(priorities).size).toBe(priorities.length);
    });

    it('gives S3 a replication role limited to the replicated prefixes, with its policy inline', () => {
      const roles = primary.findResources('AWS::IAM::Role', {
        Properties: { AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: 's3.amazonaws.com' } })] } },
      });
      expect(Object.keys(roles)).toHaveLength(1);
      const [role] = Object.values(roles);
      expect(role.Properties.RoleName).toBeUndefined();
      const statements = role.Properties.Policies[0].PolicyDocument.Statement;
      const actions = statements.flatMap((statement: { Action: string | string[] }) => [statement.Action].flat());
      expect(new Set(actions)).toEqual(
        new Set([
          's3:GetReplicationConfiguration',
          's3:ListBucket',
          's3:GetObjectVersionForReplication',
          's3:GetObjectVersionAcl',
          's3:GetObjectVersionTagging',
          's3:ReplicateObject',
          's3:ReplicateDelete',
          's3:ReplicateTags',
        ]),
      );
      const objectResources = JSON.stringify(statements.slice(1));
      expect(objectResources).not.toContain('uploads/');
      expect(objectResources).toContain('/blobs/*');
      expect(objectResources).toContain('/manifests/*');
    });

    it('creates the replica bucket with the deterministic name, versioned, private, encrypted, retained', () => {
      replicaBucket.hasResource('AWS::S3::Bucket', {
        DeletionPolicy: 'Retain',
        Properties: {
          BucketName: 'oci-registry-blobs-123456789012-eu-west-1',
          VersioningConfiguration: { Status: 'Enabled' },
          PublicAccessBlockConfiguration: Match.objectLike({ BlockPublicAcls: true, RestrictPublicBuckets: true }),
          BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
          ReplicationConfiguration: Match.absent(),
          LifecycleConfiguration: {
            Rules: [
              Match.objectLike({ Id: 'abort-incomplete-multipart-uploads' }),
              Match.objectLike({ Id: 'expire-noncurrent-versions', NoncurrentVersionExpiration: { NoncurrentDays: 30 } }),
            ],
          },
        },
      });
      replicaBucket.hasOutput('BucketName', {});
    });
  });

  describe('replica API', () => {
    it('routes every method of /v2 and /v2/{proxy+} to the function, so that a push gets its 405 naming the primary, and GET and HEAD /health', () => {
      const routeKeys = Object.values(replicaApi.findResources('AWS::ApiGatewayV2::Route')).map((route) => route.Properties.RouteKey);
      const expected = [
        ...['/v2', '/v2/{proxy+}'].flatMap((path) => ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'].map((method) => `${method} ${path}`)),
        'GET /health',
        'HEAD /health',
      ];
      expect(routeKeys.sort()).toEqual(expected.sort());
      replicaApi.resourceCountIs('AWS::ApiGatewayV2::Integration', 1);
      replicaApi.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
        IntegrationUri: { 'Fn::GetAtt': [Match.stringLikeRegexp('^RegistryFunction'), 'Arn'] },
      });
    });

    it('runs the registry function in replica mode, pointed at the local replicas and the primary', () => {
      // Without a custom domain the front door's host is read from the primary's stack output at deploy time.
      const primaryUrl = {
        'Fn::Join': ['', ['https://', { 'Fn::GetStackOutput': expect.objectContaining({ StackName: 'oci-registry', Region: 'us-east-1' }) }]],
      };
      replicaApi.resourceCountIs('AWS::Lambda::Function', 1);
      const registryFunction = resourceWithIdPrefix(replicaApi, 'AWS::Lambda::Function', 'RegistryFunction');
      expect(registryFunction.Properties).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'] });
      expect(registryFunction.Properties.Environment.Variables).toEqual({
        REGISTRY_MODE: 'replica',
        TABLE_NAME: 'oci-registry-metadata',
        BUCKET_NAME: 'oci-registry-blobs-123456789012-eu-west-1',
        PRIMARY_REGION: 'us-east-1',
        PRIMARY_BUCKET_NAME: 'oci-registry-blobs-123456789012-us-east-1',
        PRIMARY_BASE_URL: primaryUrl,
        // Tokens are the primary's: same issuer and audience, the primary's public key.
        REGISTRY_AUTH: 'token',
        PUBLIC_BASE_URL: primaryUrl,
        ADMIN_GROUP: 'registry-admins',
        TOKEN_TTL_SECONDS: '300',
        REFRESH_TOKEN_TTL_SECONDS: '2592000',
        TOKEN_KEY_GENERATION: '1',
        TOKEN_VERIFICATION_KEY_PARAMETER: '/oci-registry/token-verification-key',
        TOKEN_KEY_PARAMETER_REGION: 'us-east-1',
        PRESIGN_EXPIRY_SECONDS: '300',
        UPLOAD_SESSION_TTL_SECONDS: '86400',
        // Behind the front door: the primary's origin secret.
        REGISTRY_FRONT_DOOR: 'true',
        ORIGIN_SECRET_PARAMETER: '/oci-registry/origin-secret',
        // Pulls are audited here too with -c auditPulls=true; pull events are the primary's only.
        AUDIT_PULLS: 'false',
        AUDIT_RETENTION_DAYS: '90',
        NODE_OPTIONS: '--enable-source-maps',
      });
    });

    it('may read the primary’s public token key and origin secret in the primary region, and never the private key', () => {
      const statements = roleStatements(replicaApi, 'RegistryFunctionRole');
      expect(statementsBySid(statements).TokenVerificationKeyRead).toMatchObject({
        Action: 'ssm:GetParameter',
        Resource: 'arn:aws:ssm:us-east-1:123456789012:parameter/oci-registry/token-verification-key',
      });
      expect(JSON.stringify(statements)).not.toContain('token-signing-key');
      const bySid = statementsBySid(statements);
      expect(bySid.OriginSecretRead.Resource).toBe('arn:aws:ssm:us-east-1:123456789012:parameter/oci-registry/origin-secret');
      // Decrypting that one parameter, through Parameter Store of the primary region, and nothing else.
      expect(bySid.OriginSecretDecrypt!.Condition!.StringEquals).toEqual({
        'kms:ViaService': { 'Fn::Join': ['', ['ssm.us-east-1.', { Ref: 'AWS::URLSuffix' }]] },
        'kms:EncryptionContext:PARAMETER_ARN': 'arn:aws:ssm:us-east-1:123456789012:parameter/oci-registry/origin-secret',
      });
      expect(statements.filter((statement) => JSON.stringify(statement).includes('"kms:')).map((statement) => statement.Sid)).toEqual([
        'OriginSecretDecrypt',
      ]);
    });

    it('has no token endpoint, key pair, user pool or maintenance run of its own', () => {
      for (const type of ['Custom::RegistryTokenKeys', 'AWS::Cognito::UserPool', 'AWS::Events::Rule', 'AWS::SSM::Parameter']) {
        replicaApi.resourceCountIs(type, 0);
      }
      primary.resourceCountIs('Custom::RegistryTokenKeys', 1);
      primary.resourceCountIs('AWS::Events::Rule', 1);
    });

    it('may only read (and write audit records): the local table replica, and blobs/manifests of the local and primary buckets', () => {
      const [policy] = Object.values(
        replicaApi.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: Match.stringLikeRegexp('^RegistryFunctionRole') }] } }),
      );
      const statements = policy.Properties.PolicyDocument.Statement;
      const bySid = Object.fromEntries(statements.filter((s: { Sid?: string }) => s.Sid).map((s: { Sid: string }) => [s.Sid, s]));
      expect(new Set(bySid.ReplicaTableRead.Action)).toEqual(new Set(['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query']));
      expect(JSON.stringify(bySid.ReplicaTableRead.Resource)).toContain(':dynamodb:eu-west-1:123456789012:table/oci-registry-metadata');
      expect(bySid.ReplicaObjectsRead.Action).toBe('s3:GetObject');
      const objectArns = JSON.stringify(bySid.ReplicaObjectsRead.Resource);
      for (const region of ['eu-west-1', 'us-east-1']) {
        for (const prefix of ['blobs', 'manifests']) expect(objectArns).toContain(`oci-registry-blobs-123456789012-${region}/${prefix}/*`);
      }
      expect(objectArns).not.toContain('uploads/');
      // Refused tokens are recorded in the audit log: PutItem on its partitions only.
      expect(bySid.AuditRecordsWrite.Action).toBe('dynamodb:PutItem');
      expect(bySid.AuditRecordsWrite.Condition).toEqual({ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['AUDIT#*'] } });
      const allActions = statements
        .filter((s: { Sid?: string }) => s.Sid !== 'AuditRecordsWrite')
        .flatMap((s: { Action: string | string[] }) => [s.Action].flat());
      expect(allActions.filter((action: string) => /Put|Delete|Update|Write|Upload/.test(action) && !action.startsWith('logs:'))).toEqual([]);
    });

    it('has its own access log, dashboard and alarms on the local table replica', () => {
      // The API and its stage live in the region's bucket stack: the primary's front door needs its endpoint first.
      replicaBucket.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
        StageName: '$default',
        AccessLogSettings: Match.objectLike({ DestinationArn: Match.anyValue() }),
      });
      replicaApi.hasResourceProperties('AWS::CloudWatch::Dashboard', { DashboardName: 'oci-registry-replica-eu-west-1' });
      replicaApi.resourceCountIs('AWS::CloudWatch::Alarm', 4);
      replicaApi.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Metrics: Match.arrayWith([
          Match.objectLike({
            MetricStat: Match.objectLike({
              Metric: Match.objectLike({ MetricName: 'ReadThrottleEvents', Dimensions: [{ Name: 'TableName', Value: 'oci-registry-metadata' }] }),
            }),
          }),
        ]),
      });
    });

    it('outputs its URL, table and bucket', () => {
      expect(Object.keys(replicaApi.toJSON().Outputs)).toEqual(expect.arrayContaining(['RegistryUrl', 'TableName', 'BucketName']));
    });
  });

  it('uses no cross-region custom resources (weak references via Fn::GetStackOutput)', () => {
    for (const template of [primary, replicaApi]) {
      expect(JSON.stringify(template.toJSON())).not.toMatch(/Custom::CrossRegionExport(Writer|Reader)/);
    }
  });
});

describe('registry with replica regions and a custom domain', () => {
  let registry: SynthesizedRegistry;

  beforeAll(() => {
    registry = synthesizeRegistry({
      replicaRegions: ['eu-west-1'],
      domainName: 'registry.example.com',
      hostedZoneId: 'Z0123456789ABCDEFGHIJ',
      hostedZoneName: 'example.com',
    });
  }, 120_000);

  it('passes the AwsSolutions checks', () => {
    expect(registry.nagViolations).toEqual([]);
  });

  it('names the primary by its domain, so no value of the primary crosses regions as a reference', () => {
    const replicaApi = registry.template(registry.stacks.replicaApis[0]);
    replicaApi.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({ PRIMARY_BASE_URL: 'https://registry.example.com', PUBLIC_BASE_URL: 'https://registry.example.com' }),
      },
    });
    // The one reference: the region's own API, from the bucket stack of the same region.
    const references = JSON.stringify(replicaApi.toJSON()).match(/"StackName":"[^"]+"/g) ?? [];
    expect(new Set(references)).toEqual(new Set(['"StackName":"oci-registry-replica-blobs-eu-west-1"']));
  });
});
