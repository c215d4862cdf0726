import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { resourceWithIdPrefix, synthesizeRegistry, type SynthesizedRegistry } from './support/synthesize.js';

describe('RegistryStack with a custom domain in a Route 53 hosted zone', () => {
  let registry: SynthesizedRegistry;
  let template: Template;

  beforeAll(() => {
    registry = synthesizeRegistry({
      domainName: 'registry.example.com',
      hostedZoneId: 'Z0123456789ABCDEFGHIJ',
      hostedZoneName: 'example.com',
    });
    template = registry.template(registry.stacks.primary);
  }, 120_000);

  it('passes the AwsSolutions checks', () => {
    expect(registry.nagViolations).toEqual([]);
  });

  it('issues a DNS-validated certificate in the given zone (no hosted zone lookup)', () => {
    template.hasResourceProperties('AWS::CertificateManager::Certificate', {
      DomainName: 'registry.example.com',
      ValidationMethod: 'DNS',
      DomainValidationOptions: [{ DomainName: 'registry.example.com', HostedZoneId: 'Z0123456789ABCDEFGHIJ' }],
    });
    expect(JSON.stringify(template.toJSON())).not.toContain('dummy-value-for-hosted-zone');
  });

  it('serves the domain on the front door (CloudFront) with the certificate and TLS 1.2, and no API Gateway domain', () => {
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        Aliases: ['registry.example.com'],
        ViewerCertificate: {
          AcmCertificateArn: { Ref: Match.stringLikeRegexp('^FrontDoorCertificate') },
          MinimumProtocolVersion: 'TLSv1.2_2021',
          SslSupportMethod: 'sni-only',
        },
      }),
    });
    template.resourceCountIs('AWS::ApiGatewayV2::DomainName', 0);
  });

  it('points A and AAAA alias records at the distribution', () => {
    for (const type of ['A', 'AAAA']) {
      template.hasResourceProperties('AWS::Route53::RecordSet', {
        Type: type,
        Name: 'registry.example.com.',
        HostedZoneId: 'Z0123456789ABCDEFGHIJ',
        AliasTarget: {
          DNSName: { 'Fn::GetAtt': [Match.stringLikeRegexp('^FrontDoorDistribution'), 'DomainName'] },
          HostedZoneId: { 'Fn::FindInMap': Match.anyValue() },
        },
      });
    }
  });

  it('advertises https://<domainName> to the registry and token functions and in RegistryUrl; the API endpoint is the front door’s origin', () => {
    for (const id of ['RegistryFunction', 'TokenFunction']) {
      const fn = resourceWithIdPrefix(template, 'AWS::Lambda::Function', id);
      expect(fn.Properties.Environment.Variables.PUBLIC_BASE_URL).toBe('https://registry.example.com');
    }
    template.hasOutput('RegistryUrl', { Value: 'https://registry.example.com' });
    // Reachable for CloudFront; a request without the origin secret is refused by the functions.
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', { DisableExecuteApiEndpoint: false });
  });
});

describe('RegistryStack with an existing certificate and non-default options', () => {
  let registry: SynthesizedRegistry;
  let template: Template;

  beforeAll(() => {
    registry = synthesizeRegistry({
      registryName: 'team-registry',
      domainName: 'oci.example.org',
      certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789',
      functionMemoryMb: 2048,
      reservedConcurrency: 50,
      presignExpirySeconds: 600,
      uploadSessionTtlSeconds: 3 * 86_400,
      abortIncompleteUploadsAfterDays: 4,
      noncurrentVersionExpirationDays: 10,
      logRetentionDays: 90,
      alarmEmail: 'registry-oncall@example.org',
      serverErrorRateAlarmPercent: 2,
      apiThrottleRateLimit: 500,
      apiThrottleBurstLimit: 1000,
      tokenTtlSeconds: 600,
      refreshTokenTtlSeconds: 7 * 86_400,
      tokenKeyGeneration: 3,
      maintenanceSchedule: 'cron(0 3 * * ? *)',
      gcGraceSeconds: 7200,
    });
    template = registry.template(registry.stacks.primary);
  }, 120_000);

  it('passes the AwsSolutions checks', () => {
    expect(registry.nagViolations).toEqual([]);
  });

  it('uses the given certificate (in us-east-1, for CloudFront) and leaves DNS to the operator', () => {
    template.resourceCountIs('AWS::CertificateManager::Certificate', 0);
    template.resourceCountIs('AWS::Route53::RecordSet', 0);
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        Aliases: ['oci.example.org'],
        ViewerCertificate: Match.objectLike({
          AcmCertificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789',
        }),
      }),
    });
    template.hasOutput('RegistryUrl', { Value: 'https://oci.example.org' });
  });

  it('names stacks and resources after registryName', () => {
    expect(registry.stacks.primary.stackName).toBe('team-registry');
    template.hasResourceProperties('AWS::DynamoDB::GlobalTable', { TableName: 'team-registry-metadata' });
    template.hasResourceProperties('AWS::S3::Bucket', { BucketName: 'team-registry-blobs-123456789012-us-east-1' });
  });

  it('applies the function options to the registry function only', () => {
    expect(resourceWithIdPrefix(template, 'AWS::Lambda::Function', 'RegistryFunction').Properties).toMatchObject({
      MemorySize: 2048,
      ReservedConcurrentExecutions: 50,
      Environment: {
        Variables: expect.objectContaining({ PRESIGN_EXPIRY_SECONDS: '600', UPLOAD_SESSION_TTL_SECONDS: '259200' }),
      },
    });
    expect(resourceWithIdPrefix(template, 'AWS::Lambda::Function', 'TokenFunction').Properties).toMatchObject({ MemorySize: 512 });
    expect(resourceWithIdPrefix(template, 'AWS::Lambda::Function', 'TokenFunction').Properties.ReservedConcurrentExecutions).toBeUndefined();
  });

  it('applies the token options to both functions, and names the parameters after registryName', () => {
    const tokenSettings = { TOKEN_TTL_SECONDS: '600', REFRESH_TOKEN_TTL_SECONDS: '604800', TOKEN_KEY_GENERATION: '3' };
    expect(resourceWithIdPrefix(template, 'AWS::Lambda::Function', 'RegistryFunction').Properties.Environment.Variables).toMatchObject({
      ...tokenSettings,
      TOKEN_VERIFICATION_KEY_PARAMETER: '/team-registry/token-verification-key',
    });
    expect(resourceWithIdPrefix(template, 'AWS::Lambda::Function', 'TokenFunction').Properties.Environment.Variables).toMatchObject({
      ...tokenSettings,
      TOKEN_SIGNING_KEY_PARAMETER: '/team-registry/token-signing-key',
    });
    template.hasResourceProperties('Custom::RegistryTokenKeys', {
      SigningKeyParameterName: '/team-registry/token-signing-key',
      VerificationKeyParameterName: '/team-registry/token-verification-key',
      KeyGeneration: '3',
      RegistryName: 'team-registry',
    });
  });

  it('applies the maintenance schedule and the GC grace period', () => {
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'cron(0 3 * * ? *)' });
    expect(resourceWithIdPrefix(template, 'AWS::Lambda::Function', 'MaintenanceFunction').Properties.Environment.Variables).toMatchObject({
      GC_GRACE_SECONDS: '7200',
    });
  });

  it('applies the lifecycle options', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: [
          Match.objectLike({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 4 } }),
          Match.objectLike({ NoncurrentVersionExpiration: { NoncurrentDays: 10 } }),
          Match.objectLike({ Prefix: 'uploads/', ExpirationInDays: 4 }),
        ],
      },
    });
  });

  it('applies log retention, stage throttling and the 5xx threshold', () => {
    const retentions = Object.entries(template.findResources('AWS::Logs::LogGroup'))
      // Lambda@Edge writes its logs to groups it creates in the regions that run it, not to CDK's.
      .filter(([id]) => !id.startsWith('FrontDoorUploadResponse'))
      .map(([, group]) => group.Properties.RetentionInDays);
    // The access log, the logs of the registry, recorder, token, maintenance, key pair, event
    // dispatcher and pull-through copier functions, and the audit log (auditRetentionDays: 90 by default).
    expect(retentions).toEqual([90, 90, 90, 90, 90, 90, 90, 90, 90]);
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      DefaultRouteSettings: { ThrottlingRateLimit: 500, ThrottlingBurstLimit: 1000 },
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { Threshold: 2, ComparisonOperator: 'GreaterThanThreshold' });
  });

  it('notifies alarmEmail through a TLS-only SNS topic on alarm and recovery', () => {
    template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'registry-oncall@example.org' });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
      },
    });
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
    expect(alarms).toHaveLength(5);
    for (const alarm of alarms) {
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^ObservabilityAlarmTopic/) }]);
      expect(alarm.Properties.OKActions).toEqual([{ Ref: expect.stringMatching(/^ObservabilityAlarmTopic/) }]);
    }
  });
});

describe('RegistryStack with a custom domain outside us-east-1', () => {
  let registry: SynthesizedRegistry;

  beforeAll(() => {
    registry = synthesizeRegistry(
      { domainName: 'registry.example.com', hostedZoneId: 'Z0123456789ABCDEFGHIJ', hostedZoneName: 'example.com' },
      { account: '123456789012', region: 'eu-west-1' },
    );
  }, 120_000);

  it('passes the AwsSolutions checks in every stack (the certificate and Lambda@Edge stacks in us-east-1 too)', () => {
    expect(registry.nagViolations).toEqual([]);
  });

  it('creates the certificate in a us-east-1 stack of its own, deployed first, and uses it across regions without a custom resource', () => {
    const certificate = registry.stacks.certificate!;
    expect([certificate.stackName, certificate.region]).toEqual(['oci-registry-certificate', 'us-east-1']);
    expect(registry.stacks.primary.dependencies).toContain(certificate);
    registry.template(certificate).hasResourceProperties('AWS::CertificateManager::Certificate', {
      DomainName: 'registry.example.com',
      ValidationMethod: 'DNS',
    });
    const primary = registry.template(registry.stacks.primary);
    primary.resourceCountIs('AWS::CertificateManager::Certificate', 0);
    const [distribution] = Object.values(primary.findResources('AWS::CloudFront::Distribution'));
    expect(distribution.Properties.DistributionConfig.ViewerCertificate.AcmCertificateArn).toEqual({
      'Fn::GetStackOutput': expect.objectContaining({ StackName: 'oci-registry-certificate', Region: 'us-east-1' }),
    });
    expect(JSON.stringify(primary.toJSON())).not.toMatch(/Custom::CrossRegionExport(Writer|Reader)/);
  });
});
