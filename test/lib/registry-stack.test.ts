import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { dashboardMetrics, dashboardWidgets, synthesizeRegistry, type SynthesizedRegistry } from './support/synthesize.js';

/** The plain variant: default options, no custom domain, no replica regions. */
describe('RegistryStack (defaults)', () => {
  let registry: SynthesizedRegistry;
  let template: Template;

  beforeAll(() => {
    registry = synthesizeRegistry({});
    template = registry.template(registry.stacks.primary);
  }, 120_000);

  it('passes the AwsSolutions checks (every acknowledgement carries a reason in the code)', () => {
    expect(registry.nagViolations).toEqual([]);
  });

  it('is a single stack named after the registry', () => {
    expect(registry.stacks.primary.stackName).toBe('oci-registry');
    expect(registry.stacks.replicaBuckets).toHaveLength(0);
    expect(registry.stacks.replicaApis).toHaveLength(0);
  });

  describe('metadata table', () => {
    it('has PK/SK string keys, on-demand billing, TTL on expiresAt, PITR and deletion protection, no indexes', () => {
      template.resourceCountIs('AWS::DynamoDB::GlobalTable', 1);
      template.hasResource('AWS::DynamoDB::GlobalTable', {
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
        Properties: {
          TableName: 'oci-registry-metadata',
          BillingMode: 'PAY_PER_REQUEST',
          KeySchema: [
            { AttributeName: 'PK', KeyType: 'HASH' },
            { AttributeName: 'SK', KeyType: 'RANGE' },
          ],
          AttributeDefinitions: [
            { AttributeName: 'PK', AttributeType: 'S' },
            { AttributeName: 'SK', AttributeType: 'S' },
          ],
          TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
          GlobalSecondaryIndexes: Match.absent(),
          Replicas: [
            Match.objectLike({
              Region: 'us-east-1',
              PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
              DeletionProtectionEnabled: true,
            }),
          ],
        },
      });
    });
  });

  describe('blob bucket', () => {
    it('is private, encrypted, versioned, retained, without CORS or replication', () => {
      template.resourceCountIs('AWS::S3::Bucket', 1);
      template.hasResource('AWS::S3::Bucket', {
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
        Properties: {
          BucketName: 'oci-registry-blobs-123456789012-us-east-1',
          PublicAccessBlockConfiguration: {
            BlockPublicAcls: true,
            BlockPublicPolicy: true,
            IgnorePublicAcls: true,
            RestrictPublicBuckets: true,
          },
          BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
          VersioningConfiguration: { Status: 'Enabled' },
          OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
          CorsConfiguration: Match.absent(),
          ReplicationConfiguration: Match.absent(),
        },
      });
    });

    it('aborts incomplete multipart uploads, expires noncurrent versions and stale staging objects', () => {
      template.hasResourceProperties('AWS::S3::Bucket', {
        LifecycleConfiguration: {
          Rules: [
            { Id: 'abort-incomplete-multipart-uploads', Status: 'Enabled', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 } },
            {
              Id: 'expire-noncurrent-versions',
              Status: 'Enabled',
              NoncurrentVersionExpiration: { NoncurrentDays: 30 },
              ExpiredObjectDeleteMarker: true,
            },
            // Upload session TTL of one day plus one day of slack.
            { Id: 'expire-stale-upload-staging-objects', Status: 'Enabled', Prefix: 'uploads/', ExpirationInDays: 2 },
          ],
        },
      });
    });

    it('refuses plain HTTP and TLS older than 1.2', () => {
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
            Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } } }),
          ]),
        },
      });
    });
  });

  describe('registry function', () => {
    it('runs the registry handler on nodejs22.x arm64 with the sized memory and a timeout under API Gateway’s 30 s', () => {
      template.resourceCountIs('AWS::Lambda::Function', 1);
      template.hasResourceProperties('AWS::Lambda::Function', {
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
        MemorySize: 1024,
        Timeout: 29,
        ReservedConcurrentExecutions: Match.absent(),
        LoggingConfig: { LogGroup: { Ref: Match.stringLikeRegexp('^RegistryFunctionLogs') } },
      });
    });

    it('gets the storage names, presign and session settings and its public base URL', () => {
      template.hasResourceProperties('AWS::Lambda::Function', {
        Environment: {
          Variables: {
            TABLE_NAME: { Ref: Match.stringLikeRegexp('^MetadataTable') },
            BUCKET_NAME: { Ref: Match.stringLikeRegexp('^BlobsBucket') },
            PRESIGN_EXPIRY_SECONDS: '300',
            UPLOAD_SESSION_TTL_SECONDS: '86400',
            PUBLIC_BASE_URL: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ApiHttpApi'), 'ApiEndpoint'] },
            REGISTRY_MODE: Match.absent(),
          },
        },
      });
    });

    it('may do exactly the listed table and bucket operations, on the table and the registry prefixes only', () => {
      const policies = template.findResources('AWS::IAM::Policy', {
        Properties: { Roles: [{ Ref: Match.stringLikeRegexp('^RegistryFunctionRole') }] },
      });
      const statements = Object.values(policies).flatMap((policy) => policy.Properties.PolicyDocument.Statement);
      const bySid = Object.fromEntries(statements.filter((s) => s.Sid).map((s) => [s.Sid, s]));

      expect(new Set(bySid.RegistryTableReadWrite.Action)).toEqual(
        new Set([
          'dynamodb:GetItem',
          'dynamodb:BatchGetItem',
          'dynamodb:Query',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:BatchWriteItem',
          'dynamodb:ConditionCheckItem',
        ]),
      );
      expect(bySid.RegistryTableReadWrite.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^MetadataTable/), 'Arn'] });

      expect(new Set(bySid.RegistryObjectsReadWrite.Action)).toEqual(
        new Set(['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts']),
      );
      const prefixes = bySid.RegistryObjectsReadWrite.Resource.map((arn: { 'Fn::Join': [string, unknown[]] }) => arn['Fn::Join'][1][1]);
      expect(new Set(prefixes)).toEqual(new Set(['/blobs/*', '/uploads/*', '/manifests/*']));

      expect(bySid.RegistryBucketMissingKeysAre404.Action).toBe('s3:ListBucket');

      // Nothing else but writing to its own log group.
      const otherActions = statements.filter((s) => !s.Sid).flatMap((s) => [s.Action].flat());
      expect(new Set(otherActions)).toEqual(new Set(['logs:CreateLogStream', 'logs:PutLogEvents']));
      expect(JSON.stringify(statements)).not.toMatch(/"(dynamodb|s3|logs):\*"/);
    });

    it('uses no AWS managed policy', () => {
      template.hasResourceProperties('AWS::IAM::Role', {
        AssumeRolePolicyDocument: Match.objectLike({
          Statement: [Match.objectLike({ Principal: { Service: 'lambda.amazonaws.com' } })],
        }),
        ManagedPolicyArns: Match.absent(),
      });
    });
  });

  describe('HTTP API', () => {
    it('routes /v2 and /v2/{proxy+} for GET, HEAD, POST, PUT, PATCH, DELETE to the function, and nothing else', () => {
      const routeKeys = Object.values(template.findResources('AWS::ApiGatewayV2::Route')).map((route) => route.Properties.RouteKey);
      const expected = ['/v2', '/v2/{proxy+}'].flatMap((path) =>
        ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'].map((method) => `${method} ${path}`),
      );
      expect(routeKeys.sort()).toEqual(expected.sort());
      template.resourceCountIs('AWS::ApiGatewayV2::Integration', 1);
      template.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
        IntegrationType: 'AWS_PROXY',
        PayloadFormatVersion: '2.0',
        IntegrationUri: { 'Fn::GetAtt': [Match.stringLikeRegexp('^RegistryFunction'), 'Arn'] },
      });
    });

    it('leaves /token unwired until the token function exists (issue 3)', () => {
      const routeKeys = Object.values(template.findResources('AWS::ApiGatewayV2::Route')).map((route) => route.Properties.RouteKey);
      expect(routeKeys.filter((key: string) => key.includes('/token'))).toEqual([]);
    });

    it('is reachable on its default endpoint, over IPv4 and IPv6', () => {
      template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
        ProtocolType: 'HTTP',
        DisableExecuteApiEndpoint: false,
        IpAddressType: 'dualstack',
      });
      template.resourceCountIs('AWS::ApiGatewayV2::DomainName', 0);
    });

    it('writes JSON access logs of the $default stage to a retained log group', () => {
      template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
        StageName: '$default',
        AutoDeploy: true,
        AccessLogSettings: {
          DestinationArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ApiAccessLogs'), 'Arn'] },
          Format: Match.stringLikeRegexp('"requestId":"\\$context.requestId"'),
        },
        DefaultRouteSettings: Match.absent(),
      });
      template.hasResource('AWS::Logs::LogGroup', {
        DeletionPolicy: 'Retain',
        Properties: { RetentionInDays: 30 },
      });
    });
  });

  describe('user pool', () => {
    it('is admin-managed with a strong password policy and retained', () => {
      template.hasResource('AWS::Cognito::UserPool', {
        DeletionPolicy: 'Retain',
        Properties: {
          AdminCreateUserConfig: { AllowAdminCreateUserOnly: true },
          DeletionProtection: 'ACTIVE',
          Policies: {
            PasswordPolicy: Match.objectLike({
              MinimumLength: 12,
              RequireLowercase: true,
              RequireUppercase: true,
              RequireNumbers: true,
              RequireSymbols: true,
            }),
          },
        },
      });
    });

    it('has a secretless app client for USER_PASSWORD_AUTH and the registry-admins group', () => {
      template.hasResourceProperties('AWS::Cognito::UserPoolClient', {
        GenerateSecret: false,
        ExplicitAuthFlows: Match.arrayWith(['ALLOW_USER_PASSWORD_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH']),
        PreventUserExistenceErrors: 'ENABLED',
      });
      template.hasResourceProperties('AWS::Cognito::UserPoolGroup', { GroupName: 'registry-admins' });
    });
  });

  describe('observability', () => {
    it('has a dashboard with API, function, table and registry (EMF) metrics', () => {
      expect(dashboardMetrics(template)).toEqual({
        'API requests': ['AWS/ApiGateway/Count'],
        'API errors': ['AWS/ApiGateway/4xx', 'AWS/ApiGateway/5xx'],
        'API latency (ms)': ['AWS/ApiGateway/Latency', 'AWS/ApiGateway/Latency', 'AWS/ApiGateway/IntegrationLatency'],
        'Function invocations, errors, throttles': ['AWS/Lambda/Invocations', 'AWS/Lambda/Errors', 'AWS/Lambda/Throttles'],
        'Function duration (ms)': ['AWS/Lambda/Duration', 'AWS/Lambda/Duration', 'AWS/Lambda/Duration'],
        'Function concurrency': ['AWS/Lambda/ConcurrentExecutions'],
        'DynamoDB throttles': ['AWS/DynamoDB/ReadThrottleEvents', 'AWS/DynamoDB/WriteThrottleEvents'],
        'DynamoDB consumed capacity units': ['AWS/DynamoDB/ConsumedReadCapacityUnits', 'AWS/DynamoDB/ConsumedWriteCapacityUnits'],
        'Pushes by operation': [`SEARCH('{OciRegistry,Operation} MetricName="Pushes"', 'Sum', 300)`],
        'Pulls by operation': [`SEARCH('{OciRegistry,Operation} MetricName="Pulls"', 'Sum', 300)`],
        'BytesRedirected by operation': [`SEARCH('{OciRegistry,Operation} MetricName="BytesRedirected"', 'Sum', 300)`],
        'Errors by operation': [`SEARCH('{OciRegistry,Operation} MetricName="Errors"', 'Sum', 300)`],
      });
      const alarmWidget = dashboardWidgets(template).find((widget) => widget.type === 'alarm');
      expect(alarmWidget?.properties.title).toBe('Alarms');
    });

    it('alarms on the 5xx rate, function errors and throttles, and DynamoDB throttles', () => {
      template.resourceCountIs('AWS::CloudWatch::Alarm', 4);
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Threshold: 5,
        ComparisonOperator: 'GreaterThanThreshold',
        Metrics: Match.arrayWith([
          Match.objectLike({ Expression: 'IF(requests >= 20, 100 * FILL(serverErrors, 0) / requests, 0)' }),
          Match.objectLike({ MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: '5xx', Namespace: 'AWS/ApiGateway' }) }) }),
        ]),
      });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Errors', Namespace: 'AWS/Lambda', Threshold: 1 });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Throttles', Namespace: 'AWS/Lambda', Threshold: 1 });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Metrics: Match.arrayWith([Match.objectLike({ Expression: 'FILL(readThrottles, 0) + FILL(writeThrottles, 0)' })]),
      });
    });

    it('creates no alarm topic without alarmEmail', () => {
      template.resourceCountIs('AWS::SNS::Topic', 0);
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmActions: Match.absent() });
    });
  });

  it('exports the outputs the CLIs in scripts/ read', () => {
    expect(Object.keys(template.toJSON().Outputs).sort()).toEqual(['BucketName', 'RegistryUrl', 'TableName', 'UserPoolClientId', 'UserPoolId']);
    template.hasOutput('RegistryUrl', { Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ApiHttpApi'), 'ApiEndpoint'] } });
    template.hasOutput('BucketName', { Value: { Ref: Match.stringLikeRegexp('^BlobsBucket') } });
    template.hasOutput('TableName', { Value: { Ref: Match.stringLikeRegexp('^MetadataTable') } });
  });
});
