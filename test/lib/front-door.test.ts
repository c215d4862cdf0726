import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { frontDoorFunctionCode } from '../../functions/edge/front-door-code.js';
import {
  actionsOf,
  resourceWithIdPrefix,
  roleStatements,
  statementsBySid,
  synthesizeRegistry,
  type SynthesizedRegistry,
} from './support/synthesize.js';

/** The front door (docs/front-door.md) of every deployment: lib/constructs/front-door.ts. */

interface CacheBehavior {
  PathPattern?: string;
  TargetOriginId: string;
  AllowedMethods: string[];
  ViewerProtocolPolicy: string;
  CachePolicyId: unknown;
  OriginRequestPolicyId: unknown;
  FunctionAssociations: { EventType: string; FunctionARN: unknown }[];
  LambdaFunctionAssociations?: { EventType: string; IncludeBody: boolean; LambdaFunctionARN: unknown }[];
}

interface DistributionConfig {
  DefaultCacheBehavior: CacheBehavior;
  CacheBehaviors: CacheBehavior[];
  Origins: {
    Id: string;
    DomainName: unknown;
    S3OriginConfig?: unknown;
    OriginAccessControlId?: unknown;
    VpcOriginConfig?: unknown;
    CustomOriginConfig?: Record<string, unknown>;
  }[];
  HttpVersion: string;
  IPV6Enabled: boolean;
}

function distributionConfig(template: Template): DistributionConfig {
  const [distribution] = Object.values(template.findResources('AWS::CloudFront::Distribution'));
  return distribution.Properties.DistributionConfig;
}

describe('the front door (default deployment)', () => {
  let registry: SynthesizedRegistry;
  let template: Template;
  let config: DistributionConfig;

  beforeAll(() => {
    registry = synthesizeRegistry({});
    template = registry.template(registry.stacks.primary);
    config = distributionConfig(template);
  }, 120_000);

  it('is one distribution, HTTP/2 and 3 over IPv4 and IPv6, HTTPS only', () => {
    template.resourceCountIs('AWS::CloudFront::Distribution', 1);
    expect(config.HttpVersion).toBe('http2and3');
    expect(config.IPV6Enabled).toBe(true);
    for (const behavior of [config.DefaultCacheBehavior, ...config.CacheBehaviors]) {
      expect(behavior.ViewerProtocolPolicy).toBe('https-only');
      expect(behavior.AllowedMethods.sort()).toEqual(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT']);
    }
  });

  it('sends the API its own host name over TLS 1.2, and the bucket as the uploads origin with origin access control', () => {
    const api = config.Origins.find((origin) => origin.Id === 'api')!;
    expect(api.DomainName).toEqual({
      'Fn::Select': [2, { 'Fn::Split': ['/', { 'Fn::GetAtt': [expect.stringMatching(/^ApiHttpApi/), 'ApiEndpoint'] }] }],
    });
    expect(api.CustomOriginConfig).toMatchObject({ OriginProtocolPolicy: 'https-only', OriginSSLProtocols: ['TLSv1.2'] });
    const uploads = config.Origins.find((origin) => origin.Id === 'uploads')!;
    expect(uploads.OriginAccessControlId).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^FrontDoorDistribution.*OriginAccessControl/), 'Id'] });
    template.hasResourceProperties('AWS::CloudFront::OriginAccessControl', {
      OriginAccessControlConfig: { OriginAccessControlOriginType: 's3', SigningBehavior: 'always', SigningProtocol: 'sigv4' },
    });
    expect(config.Origins.map((origin) => origin.Id).sort()).toEqual(['api', 'uploads']);
  });

  it('caches nothing of the API (at most 1 s, keyed by Authorization and the query string) and forwards what the registry needs, never Host', () => {
    const cachePolicy = resourceWithIdPrefix(template, 'AWS::CloudFront::CachePolicy', 'FrontDoorApiCachePolicy').Properties.CachePolicyConfig;
    expect(cachePolicy).toMatchObject({ MinTTL: 0, DefaultTTL: 0, MaxTTL: 1 });
    expect(cachePolicy.ParametersInCacheKeyAndForwardedToOrigin).toMatchObject({
      HeadersConfig: { HeaderBehavior: 'whitelist', Headers: ['authorization'] },
      QueryStringsConfig: { QueryStringBehavior: 'all' },
      CookiesConfig: { CookieBehavior: 'none' },
    });
    const originRequest = resourceWithIdPrefix(template, 'AWS::CloudFront::OriginRequestPolicy', 'FrontDoorApiOriginRequestPolicy').Properties
      .OriginRequestPolicyConfig;
    expect(originRequest.HeadersConfig.HeaderBehavior).toBe('whitelist');
    expect(originRequest.HeadersConfig.Headers).toEqual(
      expect.arrayContaining(['x-registry-origin-secret', 'x-amz-checksum-sha256', 'x-amz-meta-registry-repository', 'cloudfront-viewer-country']),
    );
    expect(originRequest.HeadersConfig.Headers).not.toContain('host');
    expect(originRequest.HeadersConfig.Headers.length).toBeLessThanOrEqual(10);
    expect(originRequest.QueryStringsConfig.QueryStringBehavior).toBe('all');
  });

  it('runs the front door function (the code frontDoorFunctionCode makes, with its KeyValueStore) on every behavior, at viewer request', () => {
    const fn = resourceWithIdPrefix(template, 'AWS::CloudFront::Function', 'FrontDoorFunction');
    expect(fn.Properties.FunctionConfig).toMatchObject({
      Runtime: 'cloudfront-js-2.0',
      KeyValueStoreAssociations: [{ KeyValueStoreARN: { 'Fn::GetAtt': [expect.stringMatching(/^FrontDoorSecrets/), 'Arn'] } }],
    });
    expect(fn.Properties.FunctionCode).toBe(frontDoorFunctionCode({ primaryRegion: 'us-east-1' }));
    expect(fn.Properties.AutoPublish).toBe(true);
    template.resourceCountIs('AWS::CloudFront::KeyValueStore', 1);
    for (const behavior of [config.DefaultCacheBehavior, ...config.CacheBehaviors]) {
      expect(behavior.FunctionAssociations).toEqual([{ EventType: 'viewer-request', FunctionARN: { 'Fn::GetAtt': [fn.id, 'FunctionARN'] } }]);
    }
  });

  it('puts the origin-response Lambda@Edge function on the upload behavior only, without the body', () => {
    const withEdge = [config.DefaultCacheBehavior, ...config.CacheBehaviors].filter((behavior) => behavior.LambdaFunctionAssociations);
    expect(withEdge.map((behavior) => behavior.PathPattern)).toEqual(['/v2/*/blobs/uploads/*']);
    expect(withEdge[0]!.LambdaFunctionAssociations).toEqual([
      {
        EventType: 'origin-response',
        IncludeBody: false,
        LambdaFunctionARN: { Ref: expect.stringMatching(/^FrontDoorUploadResponseFnCurrentVersion/) },
      },
    ]);
    template.hasResourceProperties('AWS::Lambda::Function', { Runtime: 'nodejs22.x', Handler: 'index.handler', MemorySize: 128, Timeout: 5 });
  });

  it('lets only this distribution write to the bucket: PutObject only, under direct/ only', () => {
    const [policy] = Object.values(template.findResources('AWS::S3::BucketPolicy'));
    const statements = policy.Properties.PolicyDocument.Statement as Record<string, unknown>[];
    const cloudfront = statements.filter((statement) => JSON.stringify(statement.Principal ?? '').includes('cloudfront.amazonaws.com'));
    expect(cloudfront).toEqual([
      {
        Sid: 'FrontDoorDirectUploads',
        Effect: 'Allow',
        Principal: { Service: 'cloudfront.amazonaws.com' },
        Action: 's3:PutObject',
        Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [expect.stringMatching(/^BlobsBucket/), 'Arn'] }, '/direct/*']] },
        Condition: {
          StringEquals: {
            'AWS:SourceArn': {
              'Fn::Join': ['', ['arn:aws:cloudfront::123456789012:distribution/', { Ref: expect.stringMatching(/^FrontDoorDistribution/) }]],
            },
          },
        },
      },
    ]);
  });

  it('keeps recorded direct/ objects from the stale-upload lifecycle rule (it expires uploads/ only)', () => {
    const [bucket] = Object.values(template.findResources('AWS::S3::Bucket'));
    const expiring = bucket.Properties.LifecycleConfiguration.Rules.filter((rule: { ExpirationInDays?: number }) => rule.ExpirationInDays);
    expect(expiring.map((rule: { Prefix: string }) => rule.Prefix)).toEqual(['uploads/']);
  });

  it('invokes the recorder for every object created under direct/', () => {
    template.hasResourceProperties('Custom::S3BucketNotifications', {
      NotificationConfiguration: {
        LambdaFunctionConfigurations: [
          {
            Events: ['s3:ObjectCreated:*'],
            Filter: { Key: { FilterRules: [{ Name: 'prefix', Value: 'direct/' }] } },
            LambdaFunctionArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DirectUploadRecorderFunction'), 'Arn'] },
          },
        ],
      },
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Principal: 's3.amazonaws.com',
      FunctionName: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DirectUploadRecorderFunction'), 'Arn'] },
    });
  });

  it('gives the recorder the session, blob and link items and read/delete under direct/, nothing else', () => {
    const statements = roleStatements(template, 'DirectUploadRecorderRole');
    const bySid = statementsBySid(statements);
    expect(Object.keys(bySid).sort()).toEqual(['DirectUploadRecords', 'DirectUploadsMissingKeysAre404', 'DirectUploadsReadDelete']);
    expect(actionsOf(bySid.DirectUploadRecords!)).toEqual(
      new Set(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem']),
    );
    expect(bySid.DirectUploadRecords!.Condition).toEqual({ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['UPLOAD#*', 'BLOB#*', 'REPO#*'] } });
    expect(actionsOf(bySid.DirectUploadsReadDelete!)).toEqual(new Set(['s3:GetObject', 's3:DeleteObject']));
    expect(JSON.stringify(bySid.DirectUploadsReadDelete!.Resource)).toContain('/direct/*');
    expect(JSON.stringify(statements)).not.toMatch(/s3:PutObject|ssm:|kms:/);
  });

  it('names the distribution as the registry URL, with no domain of its own', () => {
    const url = { 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [expect.stringMatching(/^FrontDoorDistribution/), 'DomainName'] }]] };
    expect(template.toJSON().Outputs.RegistryUrl.Value).toEqual(url);
    expect(resourceWithIdPrefix(template, 'AWS::Lambda::Function', 'RegistryFunction').Properties.Environment.Variables.PUBLIC_BASE_URL).toEqual(url);
  });

  it('keeps the secrets out of the template: the token keys resource writes them to the store', () => {
    const json = JSON.stringify(template.toJSON());
    expect(json).not.toMatch(/ticket-secrets"\s*:|"origin-secret"\s*:/);
    template.hasResourceProperties('Custom::RegistryTokenKeys', {
      KeyValueStoreArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^FrontDoorSecrets'), 'Arn'] },
    });
  });
});

describe('the front door with replica regions', () => {
  let registry: SynthesizedRegistry;
  let config: DistributionConfig;

  beforeAll(() => {
    registry = synthesizeRegistry({ replicaRegions: ['eu-west-1', 'ap-northeast-1'] });
    config = distributionConfig(registry.template(registry.stacks.primary));
  }, 120_000);

  it('has an origin per replica API (read from the region’s bucket stack at deploy time), and the function knows them', () => {
    const replica = config.Origins.find((origin) => origin.Id === 'api-eu-west-1')!;
    expect(JSON.stringify(replica.DomainName)).toContain('"StackName":"oci-registry-replica-blobs-eu-west-1"');
    expect(config.Origins.map((origin) => origin.Id).sort()).toEqual(['api', 'api-ap-northeast-1', 'api-eu-west-1', 'uploads']);
    const fn = resourceWithIdPrefix(registry.template(registry.stacks.primary), 'AWS::CloudFront::Function', 'FrontDoorFunction');
    expect(fn.Properties.FunctionCode).toBe(frontDoorFunctionCode({ primaryRegion: 'us-east-1', replicaRegions: ['eu-west-1', 'ap-northeast-1'] }));
    expect(fn.Properties.FunctionCode).toContain('"DE":"eu-west-1"');
    expect(fn.Properties.FunctionCode).toContain('"JP":"ap-northeast-1"');
  });

  it('deploys each replica API before the primary (its endpoint is the front door’s origin)', () => {
    for (const bucketStack of registry.stacks.replicaBuckets) {
      expect(registry.stacks.primary.dependencies).toContain(bucketStack);
      registry.template(bucketStack).resourceCountIs('AWS::ApiGatewayV2::Api', 1);
    }
  });
});

describe('the front door with the upload gateway behind it', () => {
  let registry: SynthesizedRegistry;
  let template: Template;
  let config: DistributionConfig;

  beforeAll(() => {
    registry = synthesizeRegistry({ uploadGateway: true });
    template = registry.template(registry.stacks.primary);
    config = distributionConfig(template);
  }, 120_000);

  it('passes the AwsSolutions checks', () => {
    expect(registry.nagViolations).toEqual([]);
  });

  it('reaches the gateway through a CloudFront VPC origin to an internal load balancer: no domain, certificate or DNS record', () => {
    const gateway = config.Origins.find((origin) => origin.Id === 'gateway')!;
    expect(gateway.VpcOriginConfig).toMatchObject({ VpcOriginId: { 'Fn::GetAtt': [expect.stringMatching(/^FrontDoor/), 'Id'] } });
    template.hasResourceProperties('AWS::CloudFront::VpcOrigin', {
      VpcOriginEndpointConfig: Match.objectLike({
        Arn: { Ref: Match.stringLikeRegexp('^UploadGatewayLoadBalancer') },
        OriginProtocolPolicy: 'http-only',
      }),
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', { Scheme: 'internal' });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 80, Protocol: 'HTTP' });
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      SecurityGroupIngress: [Match.objectLike({ CidrIp: '10.0.0.0/16', FromPort: 80, ToPort: 80, IpProtocol: 'tcp' })],
    });
    for (const type of ['AWS::CertificateManager::Certificate', 'AWS::Route53::RecordSet']) template.resourceCountIs(type, 0);
    expect(template.toJSON().Outputs.UploadGatewayUrl).toBeUndefined();
    expect(resourceWithIdPrefix(template, 'AWS::CloudFront::Function', 'FrontDoorFunction').Properties.FunctionCode).toBe(
      frontDoorFunctionCode({ primaryRegion: 'us-east-1', gateway: true }),
    );
  });

  it('lets the gateway check the origin secret, and points upload Locations at the registry’s own host', () => {
    const taskDefinition = resourceWithIdPrefix(template, 'AWS::ECS::TaskDefinition', 'UploadGatewayTask');
    const environment = Object.fromEntries(
      (taskDefinition.Properties.ContainerDefinitions[0].Environment as { Name: string; Value: unknown }[]).map(({ Name, Value }) => [Name, Value]),
    );
    const url = { 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [expect.stringMatching(/^FrontDoorDistribution/), 'DomainName'] }]] };
    expect(environment).toMatchObject({ REGISTRY_FRONT_DOOR: 'true', ORIGIN_SECRET_PARAMETER: '/oci-registry/origin-secret' });
    expect(environment.UPLOAD_GATEWAY_URL).toEqual(url);
    expect(resourceWithIdPrefix(template, 'AWS::Lambda::Function', 'RegistryFunction').Properties.Environment.Variables.UPLOAD_GATEWAY_URL).toEqual(
      url,
    );
    expect(statementsBySid(roleStatements(template, 'UploadGatewayTaskRole')).OriginSecretRead!.Resource).toBe(
      'arn:aws:ssm:us-east-1:123456789012:parameter/oci-registry/origin-secret',
    );
  });
});
