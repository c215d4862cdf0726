import { Match } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import {
  actionsOf,
  dashboardMetrics,
  dashboardWidgets,
  resourceWithIdPrefix,
  roleStatements,
  statementsBySid,
  useSynthesizedPrimary,
} from './support/synthesize.js';

const SIGNING_KEY_PARAMETER = '/oci-registry/token-signing-key';
const VERIFICATION_KEY_PARAMETER = '/oci-registry/token-verification-key';
const SIGNING_KEY_PARAMETER_ARN = 'arn:aws:ssm:us-east-1:123456789012:parameter/oci-registry/token-signing-key';
const VERIFICATION_KEY_PARAMETER_ARN = 'arn:aws:ssm:us-east-1:123456789012:parameter/oci-registry/token-verification-key';
const TICKET_SECRET_PARAMETER_ARN = 'arn:aws:ssm:us-east-1:123456789012:parameter/oci-registry/upload-ticket-secret';
const ORIGIN_SECRET_PARAMETER_ARN = 'arn:aws:ssm:us-east-1:123456789012:parameter/oci-registry/origin-secret';
/** The registry's URL: the front door's host (docs/front-door.md). */
const REGISTRY_URL = { 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [expect.stringMatching(/^FrontDoorDistribution/), 'DomainName'] }]] };
/** What every function behind the front door gets: the flag and the origin secret to check. */
const FRONT_DOOR_ENVIRONMENT = { REGISTRY_FRONT_DOOR: 'true', ORIGIN_SECRET_PARAMETER: '/oci-registry/origin-secret' };
/** Where the functions that call upstreams read their credentials, and the copier they dispatch to (docs/pull-through.md). */
const PULL_THROUGH_ENVIRONMENT = {
  UPSTREAM_CREDENTIALS_PARAMETER_PREFIX: '/oci-registry/upstreams/',
  BLOB_COPIER_FUNCTION: 'oci-registry-pull-through-copier',
};
const UPSTREAM_CREDENTIALS_ARN = 'arn:aws:ssm:us-east-1:123456789012:parameter/oci-registry/upstreams/*';

/** The plain variant: default options, no custom domain, no replica regions. */
describe('RegistryStack (defaults)', () => {
  const synthesized = useSynthesizedPrimary({}, 'passes the AwsSolutions checks (every acknowledgement carries a reason in the code)');

  it('is a single stack named after the registry', () => {
    expect(synthesized.registry.stacks.primary.stackName).toBe('oci-registry');
    expect(synthesized.registry.stacks.replicaBuckets).toHaveLength(0);
    expect(synthesized.registry.stacks.replicaApis).toHaveLength(0);
  });

  describe('metadata table', () => {
    it('has PK/SK string keys, on-demand billing, TTL on expiresAt, PITR and deletion protection, no indexes', () => {
      synthesized.template.resourceCountIs('AWS::DynamoDB::GlobalTable', 1);
      synthesized.template.hasResource('AWS::DynamoDB::GlobalTable', {
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
      synthesized.template.resourceCountIs('AWS::S3::Bucket', 1);
      synthesized.template.hasResource('AWS::S3::Bucket', {
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
      synthesized.template.hasResourceProperties('AWS::S3::Bucket', {
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
      synthesized.template.hasResourceProperties('AWS::S3::BucketPolicy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
            Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } } }),
          ]),
        },
      });
    });
  });

  it('has the registry, token endpoint, maintenance, token key, direct-upload recorder, event dispatcher, pull-through copier and front door functions (and CDK’s notifications handler)', () => {
    const ids = Object.keys(synthesized.template.findResources('AWS::Lambda::Function'));
    expect(ids.map((id) => id.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual([
      'BucketNotificationsHandler050a0587b7544547bf325f094a3db834',
      'DirectUploadRecorderFunction',
      'EventsFunction',
      'FrontDoorUploadResponseFn',
      'MaintenanceFunction',
      'PullThroughCopierFunction',
      'RegistryFunction',
      'TokenFunction',
      'TokenKeysHandlerFunction',
    ]);
  });

  describe('registry function', () => {
    it('runs the registry handler on nodejs22.x arm64 with the sized memory and a timeout under API Gateway’s 30 s', () => {
      synthesized.template.hasResourceProperties('AWS::Lambda::Function', {
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
        MemorySize: 1024,
        Timeout: 29,
        ReservedConcurrentExecutions: Match.absent(),
        LoggingConfig: { LogGroup: { Ref: Match.stringLikeRegexp('^RegistryFunctionLogs') } },
      });
    });

    it('gets the storage names, presign and session settings, and token authentication with the public key', () => {
      const registryFunction = resourceWithIdPrefix(synthesized.template, 'AWS::Lambda::Function', 'RegistryFunction');
      expect(registryFunction.Properties.Environment.Variables).toEqual({
        TABLE_NAME: { Ref: expect.stringMatching(/^MetadataTable/) },
        BUCKET_NAME: { Ref: expect.stringMatching(/^BlobsBucket/) },
        PRESIGN_EXPIRY_SECONDS: '300',
        UPLOAD_SESSION_TTL_SECONDS: '86400',
        REGISTRY_AUTH: 'token',
        PUBLIC_BASE_URL: REGISTRY_URL,
        ADMIN_GROUP: 'registry-admins',
        TOKEN_TTL_SECONDS: '300',
        REFRESH_TOKEN_TTL_SECONDS: '2592000',
        TOKEN_KEY_GENERATION: '1',
        TOKEN_VERIFICATION_KEY_PARAMETER: VERIFICATION_KEY_PARAMETER,
        ...FRONT_DOOR_ENVIRONMENT,
        UPLOAD_TICKET_SECRET_PARAMETER: '/oci-registry/upload-ticket-secret',
        // Off unless -c pullEvents=true / -c auditPulls=true.
        PULL_EVENTS: 'false',
        AUDIT_PULLS: 'false',
        AUDIT_RETENTION_DAYS: '90',
        ...PULL_THROUGH_ENVIRONMENT,
        NODE_OPTIONS: '--enable-source-maps',
      });
    });

    it('is created or updated only after the token key pair (it caches the public key)', () => {
      const keys = resourceWithIdPrefix(synthesized.template, 'Custom::RegistryTokenKeys', 'TokenKeys');
      expect(resourceWithIdPrefix(synthesized.template, 'AWS::Lambda::Function', 'RegistryFunction').DependsOn).toContain(keys.id);
    });

    it('may do exactly the listed table and bucket operations, on the table and the registry prefixes only', () => {
      const policies = synthesized.template.findResources('AWS::IAM::Policy', {
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

      // Objects the front door wrote: read and delete, never write.
      expect(actionsOf(bySid.DirectUploadsReadDelete)).toEqual(new Set(['s3:GetObject', 's3:DeleteObject']));

      // The public token key, and the two secrets of the front door: the registry cannot sign a token.
      expect(bySid.TokenVerificationKeyRead).toMatchObject({ Action: 'ssm:GetParameter', Resource: VERIFICATION_KEY_PARAMETER_ARN });
      expect(bySid.OriginSecretRead).toMatchObject({ Action: 'ssm:GetParameter', Resource: ORIGIN_SECRET_PARAMETER_ARN });
      expect(bySid.UploadTicketSecretRead).toMatchObject({ Action: 'ssm:GetParameter', Resource: TICKET_SECRET_PARAMETER_ARN });
      expect(bySid.OriginSecretDecrypt.Condition.StringEquals['kms:EncryptionContext:PARAMETER_ARN']).toBe(ORIGIN_SECRET_PARAMETER_ARN);
      expect(bySid.UploadTicketSecretDecrypt.Condition.StringEquals['kms:EncryptionContext:PARAMETER_ARN']).toBe(TICKET_SECRET_PARAMETER_ARN);
      expect(JSON.stringify(statements)).not.toContain('token-signing-key');
      expect(JSON.stringify(statements)).not.toMatch(/"kms:Encrypt"|"ssm:(GetParameters|GetParametersByPath|PutParameter)"/);

      // Nothing else but writing to its own log group.
      const otherActions = statements.filter((s) => !s.Sid).flatMap((s) => [s.Action].flat());
      expect(new Set(otherActions)).toEqual(new Set(['logs:CreateLogStream', 'logs:PutLogEvents']));
      expect(JSON.stringify(statements)).not.toMatch(/"(dynamodb|s3|logs):\*"/);
    });

    it('uses no AWS managed policy in the roles of its own functions (only Lambda@Edge and CDK’s notifications handler have one)', () => {
      const roles = synthesized.template.findResources('AWS::IAM::Role');
      const withManaged = Object.entries(roles)
        .filter(([, role]) => role.Properties.ManagedPolicyArns !== undefined)
        .map(([id]) => id.replace(/[0-9A-F]{8}$/, ''));
      expect(withManaged.sort()).toEqual(['BucketNotificationsHandler050a0587b7544547bf325f094a3db834Role', 'FrontDoorUploadResponseFnServiceRole']);
      // Nine function roles, and the role EventBridge Scheduler assumes for webhook retries.
      const eventRoles = Object.keys(roles).filter((id) => id.startsWith('Events'));
      expect(eventRoles).toEqual(
        expect.arrayContaining([expect.stringMatching(/^EventsSchedulerRole/), expect.stringMatching(/^EventsFunction\w*Role/)]),
      );
      expect(eventRoles).toHaveLength(2);
      expect(Object.keys(roles)).toHaveLength(10);
    });
  });

  describe('HTTP API', () => {
    /** Route key -> logical id of the function its integration invokes. */
    function routeTargets(): Record<string, string> {
      const integrations = synthesized.template.findResources('AWS::ApiGatewayV2::Integration');
      return Object.fromEntries(
        Object.values(synthesized.template.findResources('AWS::ApiGatewayV2::Route')).map((route) => {
          const integrationId = (route.Properties.Target['Fn::Join'][1] as unknown[])[1] as { Ref: string };
          const integration = integrations[integrationId.Ref];
          return [route.Properties.RouteKey, integration.Properties.IntegrationUri['Fn::GetAtt'][0] as string];
        }),
      );
    }

    it('routes /v2 and /v2/{proxy+} for GET, HEAD, POST, PUT, PATCH, DELETE and GET and HEAD /health to the registry function, GET and POST /token and the personal-token paths to the token function, and nothing else', () => {
      const targets = routeTargets();
      const distribution = [
        ...['/v2', '/v2/{proxy+}'].flatMap((path) => ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'].map((method) => `${method} ${path}`)),
        'GET /health',
        'HEAD /health',
      ];
      const token = [
        'GET /token',
        'POST /token',
        'GET /token/personal-tokens',
        'POST /token/personal-tokens',
        'DELETE /token/personal-tokens/{token}',
      ];
      expect(Object.keys(targets).sort()).toEqual([...distribution, ...token].sort());
      for (const key of distribution) expect(targets[key]).toMatch(/^RegistryFunction/);
      for (const key of token) expect(targets[key]).toMatch(/^TokenFunction/);
      synthesized.template.resourceCountIs('AWS::ApiGatewayV2::Integration', 2);
      synthesized.template.allResourcesProperties('AWS::ApiGatewayV2::Integration', { IntegrationType: 'AWS_PROXY', PayloadFormatVersion: '2.0' });
    });

    it('lets API Gateway invoke each of the two functions through one permission', () => {
      const permissions = Object.values(
        synthesized.template.findResources('AWS::Lambda::Permission', { Properties: { Principal: 'apigateway.amazonaws.com' } }),
      );
      const functions = permissions.map((permission) => permission.Properties.FunctionName['Fn::GetAtt'][0] as string);
      expect(functions.map((id) => id.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual(['RegistryFunction', 'TokenFunction']);
    });

    it('is reachable on its default endpoint, over IPv4 and IPv6', () => {
      synthesized.template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
        ProtocolType: 'HTTP',
        DisableExecuteApiEndpoint: false,
        IpAddressType: 'dualstack',
      });
      synthesized.template.resourceCountIs('AWS::ApiGatewayV2::DomainName', 0);
    });

    it('writes JSON access logs of the $default stage to a retained log group', () => {
      synthesized.template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
        StageName: '$default',
        AutoDeploy: true,
        AccessLogSettings: {
          DestinationArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ApiAccessLogs'), 'Arn'] },
          Format: Match.stringLikeRegexp('"requestId":"\\$context.requestId"'),
        },
        DefaultRouteSettings: Match.absent(),
      });
      synthesized.template.hasResource('AWS::Logs::LogGroup', {
        DeletionPolicy: 'Retain',
        Properties: { RetentionInDays: 30 },
      });
    });
  });

  describe('token endpoint', () => {
    it('runs functions/token.ts on nodejs22.x arm64 behind the API, with 512 MB', () => {
      const tokenFunction = resourceWithIdPrefix(synthesized.template, 'AWS::Lambda::Function', 'TokenFunction');
      expect(tokenFunction.Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
        MemorySize: 512,
        Timeout: 29,
        LoggingConfig: { LogGroup: { Ref: expect.stringMatching(/^TokenFunctionLogs/) } },
      });
      expect(tokenFunction.Properties.ReservedConcurrentExecutions).toBeUndefined();
      expect(tokenFunction.DependsOn).toContain(resourceWithIdPrefix(synthesized.template, 'Custom::RegistryTokenKeys', 'TokenKeys').id);
    });

    it('gets token authentication with the private key, the user pool and its client, the table and the bucket', () => {
      const tokenFunction = resourceWithIdPrefix(synthesized.template, 'AWS::Lambda::Function', 'TokenFunction');
      expect(tokenFunction.Properties.Environment.Variables).toEqual({
        REGISTRY_AUTH: 'token',
        PUBLIC_BASE_URL: REGISTRY_URL,
        ADMIN_GROUP: 'registry-admins',
        TOKEN_TTL_SECONDS: '300',
        REFRESH_TOKEN_TTL_SECONDS: '2592000',
        TOKEN_KEY_GENERATION: '1',
        ...FRONT_DOOR_ENVIRONMENT,
        TOKEN_SIGNING_KEY_PARAMETER: SIGNING_KEY_PARAMETER,
        USER_POOL_ID: { Ref: expect.stringMatching(/^UsersUserPool/) },
        USER_POOL_CLIENT_ID: { Ref: expect.stringMatching(/^UsersUserPoolTokenEndpointClient/) },
        TABLE_NAME: { Ref: expect.stringMatching(/^MetadataTable/) },
        BUCKET_NAME: { Ref: expect.stringMatching(/^BlobsBucket/) },
        AUDIT_RETENTION_DAYS: '90',
        NODE_OPTIONS: '--enable-source-maps',
      });
    });

    it('runs outside any VPC, so that it reaches OIDC issuers (token.actions.githubusercontent.com, gitlab.com) over the internet', () => {
      const [tokenFunction] = Object.values(synthesized.template.findResources('AWS::Lambda::Function')).filter((resource) =>
        String((resource.Properties as { Description?: string }).Description).includes('Docker token endpoint'),
      );
      expect(tokenFunction).toBeDefined();
      expect((tokenFunction.Properties as Record<string, unknown>).VpcConfig).toBeUndefined();
    });

    it('may look users up in the pool, read robots, the access policy, workload trusts and pull-through upstreams, and read and decrypt the private key only', () => {
      const statements = roleStatements(synthesized.template, 'TokenFunctionRole');
      const bySid = statementsBySid(statements);
      expect(Object.keys(bySid).sort()).toEqual([
        'AuditRecordsWrite',
        'OriginSecretDecrypt',
        'OriginSecretRead',
        'TokenEndpointLoginState',
        'TokenEndpointRobotsAndAccessPolicy',
        'TokenEndpointUserLookup',
        'TokenSigningKeyDecrypt',
        'TokenSigningKeyRead',
      ]);

      expect(actionsOf(bySid.TokenEndpointUserLookup)).toEqual(new Set(['cognito-idp:AdminGetUser', 'cognito-idp:AdminListGroupsForUser']));
      expect(bySid.TokenEndpointUserLookup.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^UsersUserPool/), 'Arn'] });

      expect(actionsOf(bySid.TokenEndpointRobotsAndAccessPolicy)).toEqual(new Set(['dynamodb:GetItem', 'dynamodb:Query']));
      expect(bySid.TokenEndpointRobotsAndAccessPolicy.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^MetadataTable/), 'Arn'] });
      expect(bySid.TokenEndpointRobotsAndAccessPolicy.Condition).toEqual({
        // UPSTREAM: token scopes name repositories as the registry resolves them (pull-through prefixes).
        'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['ROBOT', 'ACCESS', 'TRUST', 'UPSTREAM'] },
      });
      // Login state: failed-login counters, session generations and personal access tokens (listed
      // with a Query), in their own partitions only.
      expect(actionsOf(bySid.TokenEndpointLoginState)).toEqual(
        new Set(['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem']),
      );
      expect(bySid.TokenEndpointLoginState.Condition).toEqual({ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['USER#*', 'SOURCE#*'] } });

      expect(bySid.TokenSigningKeyRead).toMatchObject({ Action: 'ssm:GetParameter', Resource: SIGNING_KEY_PARAMETER_ARN });
      expect(bySid.TokenSigningKeyDecrypt).toMatchObject({
        Action: 'kms:Decrypt',
        Resource: 'arn:aws:kms:us-east-1:123456789012:key/*',
        Condition: {
          StringEquals: {
            'kms:ViaService': { 'Fn::Join': ['', ['ssm.us-east-1.', { Ref: 'AWS::URLSuffix' }]] },
            'kms:EncryptionContext:PARAMETER_ARN': SIGNING_KEY_PARAMETER_ARN,
          },
        },
      });

      // Besides: its own log group. No bucket access, no writes to the table but to login state
      // and audit records (test/lib/audit-log-stack.test.ts).
      const otherActions = statements.filter((statement) => !statement.Sid).flatMap((statement) => [statement.Action].flat());
      expect(new Set(otherActions)).toEqual(new Set(['logs:CreateLogStream', 'logs:PutLogEvents']));
      const beyondLoginState = statements.filter((statement) => statement.Sid !== 'TokenEndpointLoginState' && statement.Sid !== 'AuditRecordsWrite');
      expect(JSON.stringify(beyondLoginState)).not.toMatch(/"s3:|dynamodb:(Put|Update|Delete|Scan|Batch)/);
    });
  });

  describe('token key pair', () => {
    it('is a custom resource naming both SSM parameters and the key generation', () => {
      synthesized.template.resourceCountIs('Custom::RegistryTokenKeys', 1);
      synthesized.template.hasResource('Custom::RegistryTokenKeys', {
        // Delete removes the parameters: nothing is left behind for a new stack to trip over.
        DeletionPolicy: 'Delete',
        Properties: {
          ServiceToken: { 'Fn::GetAtt': [Match.stringLikeRegexp('^TokenKeysHandlerFunction'), 'Arn'] },
          SigningKeyParameterName: SIGNING_KEY_PARAMETER,
          VerificationKeyParameterName: VERIFICATION_KEY_PARAMETER,
          KeyGeneration: '1',
          RegistryName: 'oci-registry',
          // The front door's secrets: their names (never values), and the store they are written to.
          UploadTicketSecretParameterName: '/oci-registry/upload-ticket-secret',
          OriginSecretParameterName: '/oci-registry/origin-secret',
          KeyValueStoreArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^FrontDoorSecrets'), 'Arn'] },
        },
      });
    });

    it('leaves the parameters to the handler: no key material and no SSM parameter in the template', () => {
      synthesized.template.resourceCountIs('AWS::SSM::Parameter', 0);
      expect(JSON.stringify(synthesized.template.toJSON())).not.toMatch(/BEGIN (EC |)(PRIVATE|PUBLIC) KEY/);
    });

    it('runs functions/token-keys-resource.ts, which may manage the key pair and the two secrets, and write the front door’s store only', () => {
      const keysHandler = resourceWithIdPrefix(synthesized.template, 'AWS::Lambda::Function', 'TokenKeysHandlerFunction');
      expect(keysHandler.Properties).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'], Handler: 'index.handler', Timeout: 60 });

      const bySid = statementsBySid(roleStatements(synthesized.template, 'TokenKeysHandlerRole'));
      expect(Object.keys(bySid).sort()).toEqual([
        'FrontDoorKeyValueStoreWrite',
        'OriginSecretDecrypt',
        'OriginSecretEncrypt',
        'OriginSecretManage',
        'TokenKeyParametersManage',
        'TokenSigningKeyEncrypt',
        'UploadTicketSecretDecrypt',
        'UploadTicketSecretEncrypt',
      ]);
      expect(actionsOf(bySid.TokenKeyParametersManage)).toEqual(new Set(['ssm:PutParameter', 'ssm:GetParameter', 'ssm:DeleteParameter']));
      expect(bySid.TokenKeyParametersManage.Resource).toEqual([
        SIGNING_KEY_PARAMETER_ARN,
        VERIFICATION_KEY_PARAMETER_ARN,
        TICKET_SECRET_PARAMETER_ARN,
      ]);
      expect(bySid.OriginSecretManage.Resource).toBe(ORIGIN_SECRET_PARAMETER_ARN);
      expect(actionsOf(bySid.FrontDoorKeyValueStoreWrite)).toEqual(
        new Set(['cloudfront-keyvaluestore:DescribeKeyValueStore', 'cloudfront-keyvaluestore:UpdateKeys']),
      );
      expect(bySid.FrontDoorKeyValueStoreWrite.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^FrontDoorSecrets/), 'Arn'] });
      expect(bySid.TokenSigningKeyEncrypt).toMatchObject({
        Action: 'kms:Encrypt',
        Condition: { StringEquals: { 'kms:EncryptionContext:PARAMETER_ARN': SIGNING_KEY_PARAMETER_ARN } },
      });
    });
  });

  describe('maintenance', () => {
    it('runs functions/gc.ts for up to 15 minutes with 2048 MB, never twice at once', () => {
      const maintenance = resourceWithIdPrefix(synthesized.template, 'AWS::Lambda::Function', 'MaintenanceFunction');
      expect(maintenance.Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
        MemorySize: 2048,
        Timeout: 900,
        ReservedConcurrentExecutions: 1,
      });
      expect(maintenance.Properties.Environment.Variables).toEqual({
        TABLE_NAME: { Ref: expect.stringMatching(/^MetadataTable/) },
        BUCKET_NAME: { Ref: expect.stringMatching(/^BlobsBucket/) },
        GC_GRACE_SECONDS: '3600',
        NODE_OPTIONS: '--enable-source-maps',
      });
    });

    it('is started once a day by an EventBridge rule, and a failed run waits for the next one', () => {
      synthesized.template.resourceCountIs('AWS::Events::Rule', 1);
      synthesized.template.hasResourceProperties('AWS::Events::Rule', {
        ScheduleExpression: 'rate(1 day)',
        State: 'ENABLED',
        Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MaintenanceFunction'), 'Arn'] } })],
      });
      synthesized.template.hasResourceProperties('AWS::Lambda::Permission', {
        Principal: 'events.amazonaws.com',
        FunctionName: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MaintenanceFunction'), 'Arn'] },
        SourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MaintenanceSchedule'), 'Arn'] },
      });
      synthesized.template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
        FunctionName: { Ref: Match.stringLikeRegexp('^MaintenanceFunction') },
        MaximumRetryAttempts: 0,
        MaximumEventAgeInSeconds: 3600,
      });
    });

    it('may scan and clean the table, and list, read and delete under the registry prefixes, writing only its run state', () => {
      const statements = roleStatements(synthesized.template, 'MaintenanceFunctionRole');
      const bySid = statementsBySid(statements);
      expect(Object.keys(bySid).sort()).toEqual([
        'MaintenanceBucketListing',
        'MaintenanceDeletionMarkers',
        'MaintenanceDirectUploadsSweep',
        'MaintenanceObjectsSweep',
        'MaintenanceRunState',
        'MaintenanceTable',
      ]);
      // The front door's objects are blob objects to garbage collection.
      expect(actionsOf(bySid.MaintenanceDirectUploadsSweep)).toEqual(new Set(['s3:GetObject', 's3:DeleteObject']));

      expect(actionsOf(bySid.MaintenanceTable)).toEqual(
        new Set(['dynamodb:Scan', 'dynamodb:Query', 'dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem']),
      );
      expect(bySid.MaintenanceTable.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^MetadataTable/), 'Arn'] });
      // Retention's deletes put a marker each (why and by whom, for the delete events), nothing else.
      expect(actionsOf(bySid.MaintenanceDeletionMarkers)).toEqual(new Set(['dynamodb:PutItem']));
      expect(bySid.MaintenanceDeletionMarkers.Condition).toEqual({ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['DELETED#*'] } });

      const prefixesOf = (statement: { Resource: unknown }) =>
        new Set([statement.Resource].flat().map((arn) => (arn as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1][1]));
      expect(actionsOf(bySid.MaintenanceObjectsSweep)).toEqual(new Set(['s3:GetObject', 's3:DeleteObject', 's3:AbortMultipartUpload']));
      expect(prefixesOf(bySid.MaintenanceObjectsSweep)).toEqual(new Set(['/blobs/*', '/uploads/*', '/manifests/*']));
      expect(actionsOf(bySid.MaintenanceRunState)).toEqual(new Set(['s3:GetObject', 's3:PutObject']));
      expect(prefixesOf(bySid.MaintenanceRunState)).toEqual(new Set(['/gc/*']));
      expect(actionsOf(bySid.MaintenanceBucketListing)).toEqual(new Set(['s3:ListBucket', 's3:ListBucketMultipartUploads']));
      expect(bySid.MaintenanceBucketListing.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^BlobsBucket/), 'Arn'] });

      const otherActions = statements.filter((statement) => !statement.Sid).flatMap((statement) => [statement.Action].flat());
      expect(new Set(otherActions)).toEqual(new Set(['logs:CreateLogStream', 'logs:PutLogEvents']));
    });
  });

  describe('pull-through copier', () => {
    it('gets the storage names, the session TTL, the credentials path and its own name (to resume a copy)', () => {
      const copier = resourceWithIdPrefix(synthesized.template, 'AWS::Lambda::Function', 'PullThroughCopierFunction');
      expect(copier.Properties.Environment.Variables).toEqual({
        TABLE_NAME: { Ref: expect.stringMatching(/^MetadataTable/) },
        BUCKET_NAME: { Ref: expect.stringMatching(/^BlobsBucket/) },
        UPLOAD_SESSION_TTL_SECONDS: '86400',
        ...PULL_THROUGH_ENVIRONMENT,
        NODE_OPTIONS: '--enable-source-maps',
      });
    });

    it('writes blobs as an upload does, under blobs/ and uploads/ only (no manifest, no direct upload), and reads upstream credentials', () => {
      const statements = roleStatements(synthesized.template, 'PullThroughCopierRole');
      const bySid = statementsBySid(statements);
      expect(Object.keys(bySid).sort()).toEqual([
        'PullThroughCopierResume',
        'RegistryBucketMissingKeysAre404',
        'RegistryObjectsReadWrite',
        'RegistryTableReadWrite',
        'UpstreamCredentialsDecrypt',
        'UpstreamCredentialsRead',
      ]);
      expect(actionsOf(bySid.RegistryObjectsReadWrite)).toEqual(
        new Set(['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts']),
      );
      const prefixes = [bySid.RegistryObjectsReadWrite.Resource].flat().map((arn) => (arn as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1][1]);
      expect(prefixes.sort()).toEqual(['/blobs/*', '/uploads/*']);
      expect(JSON.stringify(statements)).not.toMatch(/direct\/|manifests\//);
      expect(bySid.PullThroughCopierResume).toMatchObject({
        Action: 'lambda:InvokeFunction',
        Resource: 'arn:aws:lambda:us-east-1:123456789012:function:oci-registry-pull-through-copier',
      });
      expect(bySid.UpstreamCredentialsRead).toMatchObject({ Action: 'ssm:GetParameter', Resource: UPSTREAM_CREDENTIALS_ARN });
    });

    it('is the only function besides the registry function that may read upstream credentials (the token endpoint and maintenance never call an upstream)', () => {
      const readers = Object.entries(synthesized.template.findResources('AWS::IAM::Policy'))
        .filter(([, policy]) => JSON.stringify(policy.Properties.PolicyDocument).includes('/oci-registry/upstreams/'))
        .flatMap(([, policy]) => (policy.Properties.Roles as { Ref: string }[]).map((role) => role.Ref.replace(/[0-9A-F]{8}$/, '')));
      expect(readers.sort()).toEqual(['PullThroughCopierRole', 'RegistryFunctionRole']);
      const variables = Object.entries(synthesized.template.findResources('AWS::Lambda::Function'))
        .filter(([, fn]) => fn.Properties.Environment?.Variables?.UPSTREAM_CREDENTIALS_PARAMETER_PREFIX !== undefined)
        .map(([id]) => id.replace(/[0-9A-F]{8}$/, ''));
      expect(variables.sort()).toEqual(['PullThroughCopierFunction', 'RegistryFunction']);
    });
  });

  describe('user pool', () => {
    it('is admin-managed with a strong password policy and retained', () => {
      synthesized.template.hasResource('AWS::Cognito::UserPool', {
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
      synthesized.template.hasResourceProperties('AWS::Cognito::UserPoolClient', {
        GenerateSecret: false,
        ExplicitAuthFlows: Match.arrayWith(['ALLOW_USER_PASSWORD_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH']),
        PreventUserExistenceErrors: 'ENABLED',
      });
      synthesized.template.hasResourceProperties('AWS::Cognito::UserPoolGroup', { GroupName: 'registry-admins' });
    });
  });

  describe('observability', () => {
    it('has a dashboard with API, function, table and registry (EMF) metrics', () => {
      expect(dashboardMetrics(synthesized.template)).toEqual({
        'API requests': ['AWS/ApiGateway/Count'],
        'API errors': ['AWS/ApiGateway/4xx', 'AWS/ApiGateway/5xx'],
        'API latency (ms)': ['AWS/ApiGateway/Latency', 'AWS/ApiGateway/Latency', 'AWS/ApiGateway/IntegrationLatency'],
        'Function invocations, errors, throttles': ['AWS/Lambda/Invocations', 'AWS/Lambda/Errors', 'AWS/Lambda/Throttles'],
        'Function duration (ms)': ['AWS/Lambda/Duration', 'AWS/Lambda/Duration', 'AWS/Lambda/Duration'],
        'Function concurrency': ['AWS/Lambda/ConcurrentExecutions'],
        'Token endpoint invocations, errors': ['AWS/Lambda/Invocations', 'AWS/Lambda/Errors'],
        'Maintenance runs, errors': ['AWS/Lambda/Invocations', 'AWS/Lambda/Errors'],
        'Maintenance run duration (ms)': ['AWS/Lambda/Duration'],
        'DynamoDB throttles': ['AWS/DynamoDB/ReadThrottleEvents', 'AWS/DynamoDB/WriteThrottleEvents'],
        'DynamoDB consumed capacity units': ['AWS/DynamoDB/ConsumedReadCapacityUnits', 'AWS/DynamoDB/ConsumedWriteCapacityUnits'],
        'Pushes by operation': [`SEARCH('{OciRegistry,Operation} MetricName="Pushes"', 'Sum', 300)`],
        'Pulls by operation': [`SEARCH('{OciRegistry,Operation} MetricName="Pulls"', 'Sum', 300)`],
        'BytesRedirected by operation': [`SEARCH('{OciRegistry,Operation} MetricName="BytesRedirected"', 'Sum', 300)`],
        'Errors by operation': [`SEARCH('{OciRegistry,Operation} MetricName="Errors"', 'Sum', 300)`],
      });
      const alarmWidget = dashboardWidgets(synthesized.template).find((widget) => widget.type === 'alarm');
      expect(alarmWidget?.properties.title).toBe('Alarms');
    });

    it('alarms on the 5xx rate, function errors and throttles, DynamoDB throttles, and failed maintenance runs', () => {
      synthesized.template.resourceCountIs('AWS::CloudWatch::Alarm', 5);
      synthesized.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Threshold: 5,
        ComparisonOperator: 'GreaterThanThreshold',
        Metrics: Match.arrayWith([
          Match.objectLike({ Expression: 'IF(requests >= 20, 100 * FILL(serverErrors, 0) / requests, 0)' }),
          Match.objectLike({ MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: '5xx', Namespace: 'AWS/ApiGateway' }) }) }),
        ]),
      });
      synthesized.template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Errors', Namespace: 'AWS/Lambda', Threshold: 1 });
      synthesized.template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Throttles', Namespace: 'AWS/Lambda', Threshold: 1 });
      synthesized.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Metrics: Match.arrayWith([Match.objectLike({ Expression: 'FILL(readThrottles, 0) + FILL(writeThrottles, 0)' })]),
      });
      synthesized.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'Errors',
        Namespace: 'AWS/Lambda',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: Match.stringLikeRegexp('^MaintenanceFunction') } }],
        Threshold: 1,
      });
    });

    it('creates no alarm topic without alarmEmail', () => {
      synthesized.template.resourceCountIs('AWS::SNS::Topic', 0);
      synthesized.template.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmActions: Match.absent() });
    });
  });

  it('has no upload gateway: no load balancer, container service, VPC or DNS record', () => {
    for (const type of [
      'AWS::ElasticLoadBalancingV2::LoadBalancer',
      'AWS::ECS::Cluster',
      'AWS::ECS::Service',
      'AWS::ECS::TaskDefinition',
      'AWS::EC2::VPC',
      'AWS::EC2::SecurityGroup',
      'AWS::Route53::RecordSet',
      'AWS::CertificateManager::Certificate',
    ]) {
      synthesized.template.resourceCountIs(type, 0);
    }
    const json = JSON.stringify(synthesized.template.toJSON());
    expect(json).not.toMatch(/UPLOAD_GATEWAY_URL/);
    expect(synthesized.template.toJSON().Outputs.UploadGatewayUrl).toBeUndefined();
  });

  it('exports the outputs the CLIs in scripts/ read', () => {
    expect(Object.keys(synthesized.template.toJSON().Outputs).sort()).toEqual([
      'BucketName',
      'DistributionId',
      'RegistryUrl',
      'TableName',
      'UpstreamCredentialsPrefix',
      'UserPoolClientId',
      'UserPoolId',
    ]);
    expect(synthesized.template.toJSON().Outputs.RegistryUrl.Value).toEqual(REGISTRY_URL);
    synthesized.template.hasOutput('BucketName', { Value: { Ref: Match.stringLikeRegexp('^BlobsBucket') } });
    synthesized.template.hasOutput('TableName', { Value: { Ref: Match.stringLikeRegexp('^MetadataTable') } });
  });
});
