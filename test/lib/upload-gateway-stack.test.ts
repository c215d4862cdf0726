import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { resourceWithIdPrefix, roleStatements, statementsBySid, synthesizeRegistry, type SynthesizedRegistry } from './support/synthesize.js';

/** RegistryStack with the upload gateway turned on (docs/upload-gateway.md); registry-stack.test.ts checks that it is off by default. */

const TICKET_SECRET = '/oci-registry/upload-ticket-secret';
const TICKET_SECRET_ARN = `arn:aws:ssm:us-east-1:123456789012:parameter${TICKET_SECRET}`;
const SIGNING_KEY_ARN = 'arn:aws:ssm:us-east-1:123456789012:parameter/oci-registry/token-signing-key';
const VERIFICATION_KEY_ARN = 'arn:aws:ssm:us-east-1:123456789012:parameter/oci-registry/token-verification-key';
const ZONE_ID = 'Z0123456789ABCDEFGHIJ';

/** The `kms:Decrypt`/`kms:Encrypt` statement for one SecureString under aws/ssm, as auth-permissions.ts writes it. */
function parameterKeyStatement(action: string, parameterArn: string) {
  return {
    Effect: 'Allow',
    Action: action,
    Resource: 'arn:aws:kms:us-east-1:123456789012:key/*',
    Condition: {
      StringEquals: {
        'kms:ViaService': { 'Fn::Join': ['', ['ssm.us-east-1.', { Ref: 'AWS::URLSuffix' }]] },
        'kms:EncryptionContext:PARAMETER_ARN': parameterArn,
      },
    },
  };
}

function gatewayContainerEnvironment(template: Template): Record<string, unknown> {
  const taskDefinition = resourceWithIdPrefix(template, 'AWS::ECS::TaskDefinition', 'UploadGatewayTask');
  const [container] = taskDefinition.Properties.ContainerDefinitions as { Environment: { Name: string; Value: unknown }[] }[];
  return Object.fromEntries(container.Environment.map(({ Name, Value }) => [Name, Value]));
}

describe('RegistryStack with the upload gateway in the custom domain’s hosted zone', () => {
  let registry: SynthesizedRegistry;
  let template: Template;

  beforeAll(() => {
    registry = synthesizeRegistry({
      domainName: 'registry.example.com',
      hostedZoneId: ZONE_ID,
      hostedZoneName: 'example.com',
      uploadGatewayDomainName: 'uploads.registry.example.com',
    });
    template = registry.template(registry.stacks.primary);
  }, 120_000);

  it('passes the AwsSolutions checks', () => {
    expect(registry.nagViolations).toEqual([]);
  });

  it('puts an internet-facing ALB, HTTPS only with a DNS-validated certificate of the gateway’s host name, in front of one Fargate task', () => {
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::LoadBalancer', 1);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: 'internet-facing',
      Type: 'application',
      LoadBalancerAttributes: Match.arrayWith([{ Key: 'idle_timeout.timeout_seconds', Value: '4000' }]),
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 443,
      Protocol: 'HTTPS',
      Certificates: [{ CertificateArn: { Ref: Match.stringLikeRegexp('^UploadGatewayCertificate') } }],
    });
    template.hasResourceProperties('AWS::CertificateManager::Certificate', {
      DomainName: 'uploads.registry.example.com',
      ValidationMethod: 'DNS',
      DomainValidationOptions: [{ DomainName: 'uploads.registry.example.com', HostedZoneId: ZONE_ID }],
    });
    template.resourceCountIs('AWS::ECS::Service', 1);
    template.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      DesiredCount: 1,
      LoadBalancers: [Match.objectLike({ ContainerName: 'Gateway', ContainerPort: 8080 })],
    });
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
      ContainerDefinitions: [Match.objectLike({ Image: Match.objectLike({ 'Fn::Sub': Match.stringLikeRegexp('cdk-hnb659fds-container-assets') }) })],
    });
  });

  it('points an alias record of the gateway’s host name at the ALB, in the registry’s zone', () => {
    const records = Object.values(template.findResources('AWS::Route53::RecordSet')).map((record) => record.Properties);
    const gatewayRecords = records.filter((record) => record.Name === 'uploads.registry.example.com.');
    expect(gatewayRecords).toEqual([
      expect.objectContaining({
        Type: 'A',
        HostedZoneId: ZONE_ID,
        AliasTarget: expect.objectContaining({
          DNSName: { 'Fn::Join': ['', ['dualstack.', { 'Fn::GetAtt': [expect.stringMatching(/^UploadGatewayLoadBalancer/), 'DNSName'] }]] },
        }),
      }),
    ]);
    // The registry's own A and AAAA records are still there.
    expect(
      records
        .filter((record) => record.Name === 'registry.example.com.')
        .map((record) => record.Type)
        .sort(),
    ).toEqual(['A', 'AAAA']);
  });

  it('gives the gateway container the registry’s table, bucket, URL and ticket secret parameter', () => {
    expect(gatewayContainerEnvironment(template)).toMatchObject({
      TABLE_NAME: { Ref: expect.stringMatching(/^MetadataTable/) },
      BUCKET_NAME: { Ref: expect.stringMatching(/^BlobsBucket/) },
      UPLOAD_SESSION_TTL_SECONDS: '86400',
      UPLOAD_GATEWAY_URL: 'https://uploads.registry.example.com',
      UPLOAD_TICKET_SECRET_PARAMETER: TICKET_SECRET,
      UPLOAD_TICKET_TTL_SECONDS: '3600',
      UPLOAD_TICKET_SECRET_GENERATION: '1',
      PUBLIC_BASE_URL: 'https://registry.example.com',
    });
  });

  it('starts the gateway’s tasks only after the key resource wrote the ticket secret they read at start', () => {
    const keys = resourceWithIdPrefix(template, 'Custom::RegistryTokenKeys', 'TokenKeys');
    expect(resourceWithIdPrefix(template, 'AWS::ECS::Service', 'UploadGatewayService').DependsOn).toContain(keys.id);
  });

  describe('registry function', () => {
    it('answers upload Locations on the gateway: UPLOAD_GATEWAY_URL, the secret parameter and the ticket lifetime', () => {
      const registryFunction = resourceWithIdPrefix(template, 'AWS::Lambda::Function', 'RegistryFunction');
      expect(registryFunction.Properties.Environment.Variables).toMatchObject({
        PUBLIC_BASE_URL: 'https://registry.example.com',
        UPLOAD_GATEWAY_URL: 'https://uploads.registry.example.com',
        UPLOAD_TICKET_SECRET_PARAMETER: TICKET_SECRET,
        UPLOAD_TICKET_TTL_SECONDS: '3600',
      });
      expect(registryFunction.DependsOn).toContain(resourceWithIdPrefix(template, 'Custom::RegistryTokenKeys', 'TokenKeys').id);
    });

    it('may read and decrypt the ticket secret, and no other SecureString', () => {
      const statements = roleStatements(template, 'RegistryFunctionRole');
      const bySid = statementsBySid(statements);
      expect(bySid.UploadTicketSecretRead).toMatchObject({ Action: 'ssm:GetParameter', Resource: TICKET_SECRET_ARN });
      expect(bySid.UploadTicketSecretDecrypt).toMatchObject(parameterKeyStatement('kms:Decrypt', TICKET_SECRET_ARN));
      const kmsStatements = statements.filter((statement) => [statement.Action].flat().some((action) => action.startsWith('kms:')));
      // And the front door's origin secret, which every registry function checks, and the upstream
      // credentials of the pull-through cache (test/lib/registry-stack.test.ts, pull-through copier).
      expect(kmsStatements.map((statement) => statement.Sid).sort()).toEqual([
        'OriginSecretDecrypt',
        'UploadTicketSecretDecrypt',
        'UpstreamCredentialsDecrypt',
      ]);
      expect(JSON.stringify(statements)).not.toContain('token-signing-key');
      expect(JSON.stringify(statements)).not.toMatch(/"ssm:(PutParameter|DeleteParameter|GetParameters)"/);
    });
  });

  it('lets neither the token endpoint nor the maintenance run near the ticket secret', () => {
    for (const role of ['TokenFunctionRole', 'MaintenanceFunctionRole']) {
      expect(JSON.stringify(roleStatements(template, role))).not.toMatch(/upload-ticket-secret|UploadTicket/);
    }
  });

  describe('ticket secret', () => {
    it('is generated by the token key resource, named by a property outside its physical id', () => {
      template.resourceCountIs('Custom::RegistryTokenKeys', 1);
      template.hasResourceProperties('Custom::RegistryTokenKeys', {
        SigningKeyParameterName: '/oci-registry/token-signing-key',
        VerificationKeyParameterName: '/oci-registry/token-verification-key',
        KeyGeneration: '1',
        RegistryName: 'oci-registry',
        UploadTicketSecretParameterName: TICKET_SECRET,
      });
      // The same logical id as without the gateway: turning it on updates the resource in place.
      expect(resourceWithIdPrefix(template, 'Custom::RegistryTokenKeys', 'TokenKeys').id).toBe('TokenKeysAAD69857');
    });

    it('is in no template: no SSM parameter resource, no secret value', () => {
      template.resourceCountIs('AWS::SSM::Parameter', 0);
      template.resourceCountIs('AWS::SecretsManager::Secret', 0);
      expect(JSON.stringify(template.toJSON())).not.toMatch(/UPLOAD_TICKET_SECRET"|BEGIN (PRIVATE|PUBLIC) KEY/);
    });

    it('may be written, checked and deleted by the key handler, encrypted for that parameter only', () => {
      const bySid = statementsBySid(roleStatements(template, 'TokenKeysHandlerRole'));
      // Besides the front door's origin secret and its KeyValueStore (registry-stack.test.ts).
      expect(
        Object.keys(bySid)
          .filter((sid) => !/^OriginSecret|FrontDoor|UploadTicketSecretDecrypt/.test(sid))
          .sort(),
      ).toEqual(['TokenKeyParametersManage', 'TokenSigningKeyEncrypt', 'UploadTicketSecretEncrypt']);
      expect(new Set([bySid.TokenKeyParametersManage.Action].flat())).toEqual(
        new Set(['ssm:PutParameter', 'ssm:GetParameter', 'ssm:DeleteParameter']),
      );
      expect(bySid.TokenKeyParametersManage.Resource).toEqual([SIGNING_KEY_ARN, VERIFICATION_KEY_ARN, TICKET_SECRET_ARN]);
      expect(bySid.UploadTicketSecretEncrypt).toMatchObject(parameterKeyStatement('kms:Encrypt', TICKET_SECRET_ARN));
    });
  });

  it('lets the gateway’s task role read and decrypt the ticket secret', () => {
    const bySid = statementsBySid(roleStatements(template, 'UploadGatewayTaskRole'));
    expect(bySid.UploadTicketSecretRead).toMatchObject({ Action: 'ssm:GetParameter', Resource: TICKET_SECRET_ARN });
    expect(bySid.UploadTicketSecretDecrypt).toMatchObject(parameterKeyStatement('kms:Decrypt', TICKET_SECRET_ARN));
    expect(bySid.UploadSessionsAndBlobRecords.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^MetadataTable/), 'Arn'] });
  });

  it('outputs the gateway’s URL besides the usual outputs', () => {
    expect(Object.keys(template.toJSON().Outputs).sort()).toEqual([
      'BucketName',
      'DistributionId',
      'RegistryUrl',
      'TableName',
      'UploadGatewayUrl',
      'UpstreamCredentialsPrefix',
      'UserPoolClientId',
      'UserPoolId',
    ]);
    template.hasOutput('UploadGatewayUrl', { Value: 'https://uploads.registry.example.com' });
    template.hasOutput('RegistryUrl', { Value: 'https://registry.example.com' });
  });
});

describe('RegistryStack with the upload gateway on a given certificate, the registry on its default URL', () => {
  const certificateArn = 'arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-upload';
  let registry: SynthesizedRegistry;
  let template: Template;

  beforeAll(() => {
    registry = synthesizeRegistry({
      uploadGatewayDomainName: 'uploads.example.com',
      uploadGatewayCertificateArn: certificateArn,
      tokenKeyGeneration: 2,
    });
    template = registry.template(registry.stacks.primary);
  }, 120_000);

  it('passes the AwsSolutions checks', () => {
    expect(registry.nagViolations).toEqual([]);
  });

  it('serves HTTPS with the given certificate and leaves DNS to the operator', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 443,
      Protocol: 'HTTPS',
      Certificates: [{ CertificateArn: certificateArn }],
    });
    template.resourceCountIs('AWS::CertificateManager::Certificate', 0);
    template.resourceCountIs('AWS::Route53::RecordSet', 0);
    template.hasOutput('UploadGatewayUrl', { Value: 'https://uploads.example.com' });
  });

  it('names the front door’s URL as the registry in the gateway’s answers', () => {
    expect(gatewayContainerEnvironment(template).PUBLIC_BASE_URL).toEqual({
      'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [expect.stringMatching(/^FrontDoorDistribution/), 'DomainName'] }]],
    });
  });

  it('rotates the ticket secret with the token key generation, and restarts the gateway’s tasks with it', () => {
    template.hasResourceProperties('Custom::RegistryTokenKeys', { KeyGeneration: '2', UploadTicketSecretParameterName: TICKET_SECRET });
    expect(gatewayContainerEnvironment(template).UPLOAD_TICKET_SECRET_GENERATION).toBe('2');
    expect(resourceWithIdPrefix(template, 'AWS::Lambda::Function', 'RegistryFunction').Properties.Environment.Variables).toMatchObject({
      TOKEN_KEY_GENERATION: '2',
      UPLOAD_GATEWAY_URL: 'https://uploads.example.com',
    });
  });
});
