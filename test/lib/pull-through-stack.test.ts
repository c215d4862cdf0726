/**
 * What the pull-through cache needs in AWS (docs/pull-through.md, lib/constructs/pull-through.ts):
 * the copier function, who may invoke it, who may read the upstream credentials and how
 * narrowly, the variables the functions get, and the Docker Hub mirror's distribution only with
 * `dockerMirror=true`; cdk-nag clean in both shapes.
 */
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { roleStatements, statementsBySid, synthesizeRegistry, resourceWithIdPrefix, useSynthesizedPrimary } from './support/synthesize.js';
import { frontDoorFunctionCode } from '../../functions/edge/front-door-code.js';

const CREDENTIALS_ARN = 'arn:aws:ssm:us-east-1:123456789012:parameter/oci-registry/upstreams/*';
const COPIER_ARN = 'arn:aws:lambda:us-east-1:123456789012:function:oci-registry-pull-through-copier';

function functionNamed(template: Template, idPrefix: string) {
  return resourceWithIdPrefix(template, 'AWS::Lambda::Function', idPrefix);
}

describe('pull-through (defaults)', () => {
  const synthesized = useSynthesizedPrimary({});

  it('has a copier function: 15 minutes, 1769 MB, reserved concurrency 20, a fixed name, two async retries within an hour', () => {
    const copier = functionNamed(synthesized.template, 'PullThroughCopierFunction');
    expect(copier.Properties).toMatchObject({
      FunctionName: 'oci-registry-pull-through-copier',
      Timeout: 900,
      MemorySize: 1769,
      ReservedConcurrentExecutions: 20,
      Handler: 'index.handler',
    });
    expect(copier.Properties.Environment.Variables).toMatchObject({
      BLOB_COPIER_FUNCTION: 'oci-registry-pull-through-copier',
      UPSTREAM_CREDENTIALS_PARAMETER_PREFIX: '/oci-registry/upstreams/',
      TABLE_NAME: expect.anything(),
      BUCKET_NAME: expect.anything(),
    });
    synthesized.template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: copier.id },
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 3600,
    });
  });

  it('lets the API function (and the copier, to resume) invoke the copier, and nothing else', () => {
    const invokers = Object.entries(synthesized.template.findResources('AWS::IAM::Policy')).filter(([, policy]) =>
      (policy.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[]).some(
        (statement) =>
          [statement.Action].flat().includes('lambda:InvokeFunction') && JSON.stringify(statement.Resource).includes('pull-through-copier'),
      ),
    );
    const roles = invokers.flatMap(([, policy]) => (policy.Properties.Roles as { Ref: string }[]).map((role) => role.Ref));
    expect(roles.map((role) => role.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual(['PullThroughCopierRole', 'RegistryFunctionRole']);
    const api = statementsBySid(roleStatements(synthesized.template, 'RegistryFunctionRole'));
    expect(api.PullThroughCopierInvoke).toMatchObject({ Action: 'lambda:InvokeFunction', Resource: COPIER_ARN });
    expect(functionNamed(synthesized.template, 'RegistryFunction').Properties.Environment.Variables).toMatchObject({
      BLOB_COPIER_FUNCTION: 'oci-registry-pull-through-copier',
      UPSTREAM_CREDENTIALS_PARAMETER_PREFIX: '/oci-registry/upstreams/',
    });
  });

  it.each([['RegistryFunctionRole'], ['PullThroughCopierRole']])(
    '%s reads upstream credentials: GetParameter on the upstreams path, Decrypt only via Parameter Store for that path',
    (role) => {
      const bySid = statementsBySid(roleStatements(synthesized.template, role));
      expect(bySid.UpstreamCredentialsRead).toMatchObject({ Action: 'ssm:GetParameter', Resource: CREDENTIALS_ARN });
      expect(bySid.UpstreamCredentialsDecrypt).toMatchObject({
        Action: 'kms:Decrypt',
        Resource: 'arn:aws:kms:us-east-1:123456789012:key/*',
        Condition: {
          StringEquals: { 'kms:ViaService': { 'Fn::Join': ['', ['ssm.us-east-1.', { Ref: 'AWS::URLSuffix' }]] } },
          StringLike: { 'kms:EncryptionContext:PARAMETER_ARN': CREDENTIALS_ARN },
        },
      });
    },
  );

  it.each([['TokenFunctionRole'], ['MaintenanceFunctionRole']])('%s, which never calls an upstream, cannot read upstream credentials', (role) => {
    const bySid = statementsBySid(roleStatements(synthesized.template, role));
    expect(bySid.UpstreamCredentialsRead).toBeUndefined();
    expect(bySid.UpstreamCredentialsDecrypt).toBeUndefined();
  });

  it('grants none of those functions GetParametersByPath or a write of parameters', () => {
    const roles = ['RegistryFunctionRole', 'TokenFunctionRole', 'PullThroughCopierRole', 'MaintenanceFunctionRole'];
    const actions = roles.flatMap((role) => roleStatements(synthesized.template, role)).flatMap((statement) => [statement.Action].flat());
    expect(actions).toContain('ssm:GetParameter');
    expect(actions).not.toContain('ssm:GetParametersByPath');
    expect(actions).not.toContain('ssm:PutParameter');
  });

  it('outputs the credentials prefix for the admin CLI, and no mirror', () => {
    synthesized.template.hasOutput('UpstreamCredentialsPrefix', { Value: '/oci-registry/upstreams/' });
    expect(Object.keys(synthesized.template.findOutputs('DockerMirrorUrl'))).toEqual([]);
    synthesized.template.resourceCountIs('AWS::CloudFront::Distribution', 1);
  });
});

describe('pull-through with -c dockerMirror=true', () => {
  const synthesized = useSynthesizedPrimary({ dockerMirror: true });

  it('adds a second distribution whose function marks the mirror entry, and outputs its URL', () => {
    synthesized.template.resourceCountIs('AWS::CloudFront::Distribution', 2);
    const mirrorFunction = resourceWithIdPrefix(synthesized.template, 'AWS::CloudFront::Function', 'FrontDoorMirrorFunction');
    expect(mirrorFunction.Properties.FunctionCode).toBe(
      frontDoorFunctionCode({ primaryRegion: 'us-east-1', replicaRegions: [], entry: 'docker-mirror' }),
    );
    expect(mirrorFunction.Properties.FunctionCode).toContain('"entry":"docker-mirror"');
    const mainFunction = resourceWithIdPrefix(synthesized.template, 'AWS::CloudFront::Function', 'FrontDoorFunction');
    expect(mainFunction.Properties.FunctionCode).toContain('"entry":""');
    const mirror = resourceWithIdPrefix(synthesized.template, 'AWS::CloudFront::Distribution', 'FrontDoorMirrorDistribution');
    expect(mirror.Properties.DistributionConfig.DefaultCacheBehavior.FunctionAssociations).toEqual([
      { EventType: 'viewer-request', FunctionARN: { 'Fn::GetAtt': [mirrorFunction.id, 'FunctionARN'] } },
    ]);
    // Read-only: no upload behavior, no bucket origin.
    expect(mirror.Properties.DistributionConfig.CacheBehaviors ?? []).toEqual([]);
    expect(JSON.stringify(mirror.Properties.DistributionConfig.Origins)).not.toContain('S3OriginConfig');
    synthesized.template.hasOutput('DockerMirrorUrl', { Value: { 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [mirror.id, 'DomainName'] }]] } });
  });

  it('forwards the entry header to the registry, and tells the functions the mirror URL', () => {
    synthesized.template.hasResourceProperties('AWS::CloudFront::OriginRequestPolicy', {
      OriginRequestPolicyConfig: { HeadersConfig: { Headers: Match.arrayWith(['x-registry-entry']) } },
    });
    const mirror = resourceWithIdPrefix(synthesized.template, 'AWS::CloudFront::Distribution', 'FrontDoorMirrorDistribution');
    const url = { 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [mirror.id, 'DomainName'] }]] };
    expect(functionNamed(synthesized.template, 'RegistryFunction').Properties.Environment.Variables.DOCKER_MIRROR_BASE_URL).toEqual(url);
    expect(functionNamed(synthesized.template, 'TokenFunction').Properties.Environment.Variables.DOCKER_MIRROR_BASE_URL).toEqual(url);
  });
});

describe('dockerMirror with a custom domain', () => {
  it('serves mirror.<domain> on the same certificate (a subject alternative name), with alias records', () => {
    const registry = synthesizeRegistry({
      dockerMirror: true,
      domainName: 'registry.example.com',
      hostedZoneId: 'Z0123456789ABCDEFGHIJ',
      hostedZoneName: 'example.com',
    });
    const template = registry.template(registry.stacks.primary);
    expect(registry.nagViolations).toEqual([]);
    template.hasResourceProperties('AWS::CertificateManager::Certificate', {
      DomainName: 'registry.example.com',
      SubjectAlternativeNames: ['mirror.registry.example.com'],
    });
    const mirror = resourceWithIdPrefix(template, 'AWS::CloudFront::Distribution', 'FrontDoorMirrorDistribution');
    expect(mirror.Properties.DistributionConfig.Aliases).toEqual(['mirror.registry.example.com']);
    template.hasResourceProperties('AWS::Route53::RecordSet', { Name: 'mirror.registry.example.com.', Type: 'A' });
    template.hasResourceProperties('AWS::Route53::RecordSet', { Name: 'mirror.registry.example.com.', Type: 'AAAA' });
    template.hasOutput('DockerMirrorUrl', { Value: 'https://mirror.registry.example.com' });
  }, 120_000);
});
