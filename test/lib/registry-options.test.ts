import { App } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { deploymentEnvFromContext } from '../../lib/registry-app.js';
import {
  DEFAULT_OPTIONS,
  RegistryOptionsError,
  registryOptionsInputFromContext,
  resolveRegistryOptions,
  type RegistryOptionsInput,
} from '../../lib/registry-options.js';

const fromContext = (context: Record<string, unknown>) => registryOptionsInputFromContext(new App({ context }).node);

describe('resolveRegistryOptions', () => {
  it('applies the documented defaults', () => {
    expect(resolveRegistryOptions({})).toEqual({
      registryName: 'oci-registry',
      replicaRegions: [],
      customDomain: undefined,
      uploadGateway: undefined,
      functionMemoryMb: 1024,
      reservedConcurrency: undefined,
      presignExpirySeconds: 300,
      uploadSessionTtlSeconds: 86_400,
      abortIncompleteUploadsAfterDays: 7,
      noncurrentVersionExpirationDays: 30,
      logRetentionDays: 30,
      alarmEmail: undefined,
      serverErrorRateAlarmPercent: 5,
      apiThrottle: undefined,
      tokenTtlSeconds: 300,
      refreshTokenTtlSeconds: 2_592_000,
      tokenKeyGeneration: 1,
      maintenanceSchedule: 'rate(1 day)',
      gcGraceSeconds: 3600,
      auditRetentionDays: 90,
      pullEvents: false,
      auditPulls: false,
    });
    expect(DEFAULT_OPTIONS.registryName).toBe('oci-registry');
  });

  it('normalizes the custom domain and keeps the hosted zone or certificate', () => {
    expect(resolveRegistryOptions({ domainName: 'Registry.Example.com.', hostedZoneId: 'Z1', hostedZoneName: 'example.com.' }).customDomain).toEqual({
      domainName: 'registry.example.com',
      hostedZone: { id: 'Z1', name: 'example.com' },
      certificateArn: undefined,
    });
    // The domain is the front door's (CloudFront): its certificate lives in us-east-1, wherever the registry is.
    const certificateArn = 'arn:aws:acm:us-east-1:123456789012:certificate/abc-123';
    expect(resolveRegistryOptions({ domainName: 'example.com', certificateArn }, 'eu-central-1').customDomain).toEqual({
      domainName: 'example.com',
      hostedZone: undefined,
      certificateArn,
    });
  });

  it('puts the upload gateway behind the front door with uploadGateway=true', () => {
    expect(resolveRegistryOptions({ uploadGateway: true }).uploadGateway).toEqual({ behindFrontDoor: true });
    expect(resolveRegistryOptions({ uploadGateway: false }).uploadGateway).toBeUndefined();
  });

  it('turns the upload gateway on with its host name, in the registry’s hosted zone or on a given certificate', () => {
    const zone = { hostedZoneId: 'Z1', hostedZoneName: 'example.com' };
    expect(
      resolveRegistryOptions({ domainName: 'registry.example.com', ...zone, uploadGatewayDomainName: 'Uploads.Example.com.' }).uploadGateway,
    ).toEqual({ domainName: 'uploads.example.com', hostedZone: { id: 'Z1', name: 'example.com' }, certificateArn: undefined });
    // A registry on the API's default URL may use the zone for the gateway alone.
    const zoneOnly = resolveRegistryOptions({ ...zone, uploadGatewayDomainName: 'uploads.example.com' });
    expect(zoneOnly.customDomain).toBeUndefined();
    expect(zoneOnly.uploadGateway).toEqual({
      domainName: 'uploads.example.com',
      hostedZone: { id: 'Z1', name: 'example.com' },
      certificateArn: undefined,
    });
    const certificateArn = 'arn:aws:acm:eu-central-1:123456789012:certificate/abc-123';
    expect(
      resolveRegistryOptions({ uploadGatewayDomainName: 'uploads.example.org', uploadGatewayCertificateArn: certificateArn }, 'eu-central-1')
        .uploadGateway,
    ).toEqual({
      domainName: 'uploads.example.org',
      hostedZone: undefined,
      certificateArn,
    });
  });

  it('explains what an upload gateway combination lacks', () => {
    expect(() => resolveRegistryOptions({ uploadGatewayDomainName: 'uploads.example.com' })).toThrow(
      'Invalid registry configuration: uploadGatewayDomainName needs either hostedZoneId + hostedZoneName (the zone that holds it) or uploadGatewayCertificateArn (see docs/configuration.md)',
    );
    expect(() =>
      resolveRegistryOptions({
        domainName: 'registry.example.com',
        hostedZoneId: 'Z1',
        hostedZoneName: 'example.com',
        uploadGatewayDomainName: 'uploads.example.org',
      }),
    ).toThrow('uploadGatewayDomainName uploads.example.org is not inside hostedZoneName example.com');
  });

  it('accepts EventBridge rate and cron expressions for the maintenance schedule', () => {
    for (const schedule of ['rate(1 day)', 'rate(12 hours)', 'rate(30 minutes)', 'cron(0 3 * * ? *)', 'cron(15 2 ? * SUN *)']) {
      expect(resolveRegistryOptions({ maintenanceSchedule: schedule }).maintenanceSchedule).toBe(schedule);
    }
  });

  const invalid: [string, RegistryOptionsInput, string?][] = [
    ['an upper-case registryName', { registryName: 'OciRegistry' }],
    ['a registryName that makes bucket names too long', { registryName: 'a-very-long-registry-name' }],
    ['replicas without a known primary region', { replicaRegions: ['eu-west-1'] }],
    ['the primary region as a replica', { replicaRegions: ['us-east-1'] }, 'us-east-1'],
    ['a replica region twice', { replicaRegions: ['eu-west-1', 'eu-west-1'] }, 'us-east-1'],
    ['a misspelt region', { replicaRegions: ['eu-west'] }, 'us-east-1'],
    ['a domain without zone or certificate', { domainName: 'registry.example.com' }],
    ['a hosted zone id without its name', { domainName: 'registry.example.com', hostedZoneId: 'Z1' }],
    ['a domain outside the hosted zone', { domainName: 'registry.example.org', hostedZoneId: 'Z1', hostedZoneName: 'example.com' }],
    ['a hosted zone without a domain', { hostedZoneId: 'Z1', hostedZoneName: 'example.com' }],
    [
      'a certificate outside us-east-1, where CloudFront takes them from',
      { domainName: 'registry.example.com', certificateArn: 'arn:aws:acm:eu-west-1:123456789012:certificate/abc' },
      'eu-west-1',
    ],
    ['a gateway behind the front door with a host name of its own', { uploadGateway: true, uploadGatewayDomainName: 'uploads.example.com' }],
    ['a malformed certificate ARN', { domainName: 'registry.example.com', certificateArn: 'arn:aws:iam::123456789012:role/x' }],
    ['a certificate without a domain', { certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc' }, 'us-east-1'],
    [
      'an upload gateway without zone or certificate',
      {
        domainName: 'registry.example.com',
        certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc',
        uploadGatewayDomainName: 'uploads.example.com',
      },
      'us-east-1',
    ],
    [
      'an upload gateway outside the hosted zone',
      { hostedZoneId: 'Z1', hostedZoneName: 'example.com', uploadGatewayDomainName: 'uploads.example.org' },
    ],
    [
      'an upload gateway on the registry’s own host name',
      { domainName: 'registry.example.com', hostedZoneId: 'Z1', hostedZoneName: 'example.com', uploadGatewayDomainName: 'registry.example.com' },
    ],
    [
      'an upload gateway host name that is no host name',
      { hostedZoneId: 'Z1', hostedZoneName: 'example.com', uploadGatewayDomainName: 'uploads_example.com' },
    ],
    [
      'an upload gateway certificate without its host name',
      { uploadGatewayCertificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc' },
      'us-east-1',
    ],
    [
      'an upload gateway certificate from another region',
      { uploadGatewayDomainName: 'uploads.example.com', uploadGatewayCertificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc' },
      'eu-west-1',
    ],
    ['a malformed upload gateway certificate ARN', { uploadGatewayDomainName: 'uploads.example.com', uploadGatewayCertificateArn: 'abc' }],
    ['multipart uploads aborted before their session expires', { abortIncompleteUploadsAfterDays: 1, uploadSessionTtlSeconds: 2 * 86_400 }],
    ['presigned URLs longer than SigV4 allows', { presignExpirySeconds: 8 * 86_400 }],
    ['an unsupported log retention', { logRetentionDays: 10 }],
    ['too little memory', { functionMemoryMb: 64 }],
    ['a fractional reserved concurrency', { reservedConcurrency: 1.5 }],
    ['only half of the throttle settings', { apiThrottleRateLimit: 100 }],
    ['a 5xx threshold above 100 %', { serverErrorRateAlarmPercent: 150 }],
    ['an alarm e-mail that is not an address', { alarmEmail: 'ops' }],
    ['access tokens shorter than Docker accepts', { tokenTtlSeconds: 30 }],
    ['refresh tokens that end before access tokens', { tokenTtlSeconds: 3600, refreshTokenTtlSeconds: 600 }],
    ['a key generation of zero', { tokenKeyGeneration: 0 }],
    ['a GC grace period shorter than a Lambda run', { gcGraceSeconds: 60 }],
    ['a rate with a plural unit for 1', { maintenanceSchedule: 'rate(1 days)' }],
    ['a rate with a singular unit for 2', { maintenanceSchedule: 'rate(2 day)' }],
    ['a rate of zero', { maintenanceSchedule: 'rate(0 minutes)' }],
    ['a cron expression with five fields', { maintenanceSchedule: 'cron(0 3 * * ?)' }],
    ['a schedule that is no expression', { maintenanceSchedule: 'daily' }],
  ];
  it.each(invalid)('rejects %s', (_name, input, region) => {
    expect(() => resolveRegistryOptions(input, region)).toThrow(RegistryOptionsError);
  });
});

describe('registryOptionsInputFromContext', () => {
  it('reads values given with -c, which arrive as strings', () => {
    expect(
      fromContext({
        registryName: 'team-registry',
        replicaRegions: '["eu-west-1","ap-northeast-1"]',
        functionMemoryMb: '2048',
        reservedConcurrency: '20',
        abortIncompleteUploadsAfterDays: '3',
        alarmEmail: 'ops@example.com',
        maintenanceSchedule: 'cron(0 3 * * ? *)',
        gcGraceSeconds: '7200',
        tokenKeyGeneration: '2',
        uploadGatewayDomainName: 'uploads.example.com',
        uploadGatewayCertificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc',
      }),
    ).toMatchObject({
      registryName: 'team-registry',
      replicaRegions: ['eu-west-1', 'ap-northeast-1'],
      functionMemoryMb: 2048,
      reservedConcurrency: 20,
      abortIncompleteUploadsAfterDays: 3,
      alarmEmail: 'ops@example.com',
      maintenanceSchedule: 'cron(0 3 * * ? *)',
      gcGraceSeconds: 7200,
      tokenKeyGeneration: 2,
      uploadGatewayDomainName: 'uploads.example.com',
      uploadGatewayCertificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc',
    });
  });

  it('reads JSON values from cdk.json and comma-separated region lists', () => {
    expect(fromContext({ replicaRegions: ['eu-west-1'], logRetentionDays: 90 })).toMatchObject({
      replicaRegions: ['eu-west-1'],
      logRetentionDays: 90,
    });
    expect(fromContext({ replicaRegions: 'eu-west-1, ap-northeast-1' }).replicaRegions).toEqual(['eu-west-1', 'ap-northeast-1']);
    expect(fromContext({ replicaRegions: [] }).replicaRegions).toEqual([]);
  });

  it('reads the pull flags (-c pullEvents=true -c auditPulls=true), and refuses other values', () => {
    expect(fromContext({ pullEvents: 'true', auditPulls: true })).toMatchObject({ pullEvents: true, auditPulls: true });
    expect(resolveRegistryOptions(fromContext({ pullEvents: 'false' }))).toMatchObject({ pullEvents: false, auditPulls: false });
    expect(() => fromContext({ pullEvents: 'yes please' })).toThrow(RegistryOptionsError);
  });

  it('treats absent and empty values as unset', () => {
    expect(fromContext({ domainName: '', functionMemoryMb: '' })).toMatchObject({ domainName: undefined, functionMemoryMb: undefined });
  });

  it('rejects values of the wrong type', () => {
    expect(() => fromContext({ functionMemoryMb: 'lots' })).toThrow(RegistryOptionsError);
    expect(() => fromContext({ replicaRegions: '["eu-west-1"' })).toThrow(RegistryOptionsError);
    expect(() => fromContext({ domainName: 42 })).toThrow(RegistryOptionsError);
  });
});

describe('deploymentEnvFromContext', () => {
  it('prefers context account/region over the CLI defaults', () => {
    const env = deploymentEnvFromContext(new App({ context: { account: '111122223333', region: 'eu-central-1' } }).node);
    expect(env).toEqual({ account: '111122223333', region: 'eu-central-1' });
  });
});
