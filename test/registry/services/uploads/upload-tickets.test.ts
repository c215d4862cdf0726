import { createHmac } from 'node:crypto';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { configFromEnv, type RegistryConfig } from '../../../../registry/config/config.js';
import type { AccessRequirement } from '../../../../registry/services/auth/authorizer.js';
import { TicketAuthorizer } from '../../../../registry/services/auth/ticket-authorizer.js';
import type { RegistryRequest } from '../../../../registry/model/http.js';
import { silentLogger } from '../../../../registry/support/logger.js';
import { RegistryError } from '../../../../registry/model/oci/errors.js';
import { createServices } from '../../../../registry/services/services.js';
import { createAwsClients } from '../../../../registry/storage/aws-clients.js';
import { parseTicketSecrets, UploadTickets, uploadLocation, withUploadTicketSecret } from '../../../../registry/services/uploads/upload-tickets.js';
import { createUploadGatewayHandler } from '../../../../registry/api/upload-gateway.js';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const OTHER_SECRET = 'another-secret-that-is-long-enough-9876543210';
const SESSION = '0b6c7f3e-2a51-4c39-9d0e-6a1f2b3c4d5e';
const OTHER_SESSION = '9f8e7d6c-5b4a-4392-8e1f-0a1b2c3d4e5f';
const REGISTRY_URL = 'https://registry.example.com';
const GATEWAY_URL = 'https://uploads.registry.example.com';
const T0 = Date.UTC(2026, 0, 1);

function clock(start = T0) {
  let now = start;
  return { now: () => now, advance: (seconds: number) => (now += seconds * 1000) };
}

const baseConfig: RegistryConfig = {
  region: 'us-east-1',
  tableName: 'table',
  bucketName: 'bucket',
  presignExpirySeconds: 300,
  uploadSessionTtlSeconds: 86_400,
};

function request(method: string, path: string, query: Record<string, string | string[]> = {}): RegistryRequest {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) for (const one of [value].flat()) params.append(key, one);
  return { method, path, query: params, headers: {} };
}

const push = (name: string): AccessRequirement => ({ kind: 'repository', name, action: 'push' });

async function refusal(promise: Promise<unknown>): Promise<RegistryError> {
  const error = await promise.then(
    () => new Error('expected a refusal'),
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(RegistryError);
  return error as RegistryError;
}

describe('UploadTickets', () => {
  it('verifies a ticket it issued, with its claims', () => {
    const time = clock();
    const tickets = new UploadTickets([SECRET], 3600, time.now);
    const ticket = tickets.issue('team/app', SESSION);

    expect(ticket).toMatch(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(tickets.verify(ticket)).toEqual({
      valid: true,
      claims: { repository: 'team/app', sessionId: SESSION, actions: ['patch', 'put', 'get', 'delete'], expiresAt: T0 / 1000 + 3600 },
    });
  });

  it('refuses a ticket once its lifetime is over', () => {
    const time = clock();
    const tickets = new UploadTickets([SECRET], 60, time.now);
    const ticket = tickets.issue('team/app', SESSION);
    time.advance(59);
    expect(tickets.verify(ticket).valid).toBe(true);
    time.advance(1);
    expect(tickets.verify(ticket)).toMatchObject({ valid: false, reason: 'expired' });
  });

  it('refuses a ticket signed with another secret, or whose claims or MAC were changed', () => {
    const tickets = new UploadTickets([SECRET], 3600);
    const foreign = new UploadTickets([OTHER_SECRET], 3600).issue('team/app', SESSION);
    expect(tickets.verify(foreign)).toEqual({ valid: false, reason: 'forged' });

    const [version, claims, signature] = tickets.issue('team/app', SESSION).split('.') as [string, string, string];
    const otherClaims = Buffer.from(
      JSON.stringify({ r: 'team/other', u: SESSION, a: ['patch', 'put', 'get', 'delete'], e: Math.floor(Date.now() / 1000) + 3600 }),
    ).toString('base64url');
    expect(tickets.verify(`${version}.${otherClaims}.${signature}`)).toEqual({ valid: false, reason: 'forged' });

    const flipped = signature.startsWith('A') ? `B${signature.slice(1)}` : `A${signature.slice(1)}`;
    expect(tickets.verify(`${version}.${claims}.${flipped}`)).toEqual({ valid: false, reason: 'forged' });
    expect(tickets.verify(`${version}.${claims}.${signature.slice(0, 20)}`)).toEqual({ valid: false, reason: 'forged' });
  });

  it('refuses what is not a ticket at all', () => {
    const tickets = new UploadTickets([SECRET], 3600);
    for (const junk of ['', 'v1', 'v1..', 'v2.e30.AAAA', 'v1.e30', 'v1.e30.AAAA.AAAA', 'v1.not base64.AAAA']) {
      expect(tickets.verify(junk), junk).toMatchObject({ valid: false, reason: 'malformed' });
    }
  });

  it('an authentic ticket whose claims are not of the expected shape is malformed, not trusted', () => {
    // Only someone holding the secret could sign these; they must still not pass as tickets.
    const tickets = new UploadTickets([SECRET], 3600);
    const sign = (claims: unknown) => {
      const signed = `v1.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
      return `${signed}.${createHmac('sha256', SECRET).update(signed).digest('base64url')}`;
    };
    expect(tickets.verify(sign({ r: 'a', u: SESSION, a: ['patch', 'mount'], e: 9e9 }))).toMatchObject({ reason: 'malformed' });
    expect(tickets.verify(sign({ r: 'a', u: SESSION, a: ['patch'], e: '9e9' }))).toMatchObject({ reason: 'malformed' });
    expect(tickets.verify(sign([1, 2]))).toMatchObject({ reason: 'malformed' });
    expect(tickets.verify(sign({ r: 'a', u: SESSION, a: ['patch'], e: 9e9 }))).toMatchObject({ valid: true });
  });

  it('signs with the first secret and accepts any listed one, so the secret can be rotated', () => {
    const before = new UploadTickets([SECRET], 3600);
    const during = new UploadTickets([OTHER_SECRET, SECRET], 3600);
    const after = new UploadTickets([OTHER_SECRET], 3600);
    const old = before.issue('team/app', SESSION);
    const fresh = during.issue('team/app', SESSION);
    expect(during.verify(old).valid).toBe(true);
    expect(after.verify(fresh).valid).toBe(true);
    expect(after.verify(old).valid).toBe(false);
  });

  it('refuses short secrets and a missing one', () => {
    expect(() => new UploadTickets(['short'], 3600)).toThrow(/at least 32/);
    expect(() => new UploadTickets([], 3600)).toThrow(/secret/);
    expect(parseTicketSecrets(` ${SECRET},${OTHER_SECRET}\n`)).toEqual([SECRET, OTHER_SECRET]);
  });
});

describe('uploadLocation', () => {
  it('is the registry path without a gateway', () => {
    expect(uploadLocation(baseConfig, 'team/app', SESSION)).toBe(`/v2/team/app/blobs/uploads/${SESSION}`);
  });

  it('is an absolute gateway URL with a ticket for exactly this session when a gateway is configured', () => {
    const config = { ...baseConfig, uploadGateway: { url: GATEWAY_URL, ticketSeconds: 3600, ticketSecret: SECRET } };
    const location = new URL(uploadLocation(config, 'team/app', SESSION));
    expect(`${location.origin}${location.pathname}`).toBe(`${GATEWAY_URL}/v2/team/app/blobs/uploads/${SESSION}`);
    const check = new UploadTickets([SECRET], 3600).verify(location.searchParams.get('ticket')!);
    expect(check).toMatchObject({ valid: true, claims: { repository: 'team/app', sessionId: SESSION } });
  });
});

describe('upload gateway configuration', () => {
  const env = { TABLE_NAME: 't', BUCKET_NAME: 'b' };

  it('is off unless UPLOAD_GATEWAY_URL is set', () => {
    expect(configFromEnv(env).uploadGateway).toBeUndefined();
  });

  it('reads the URL, the ticket lifetime and the secret or its parameter', () => {
    expect(configFromEnv({ ...env, UPLOAD_GATEWAY_URL: `${GATEWAY_URL}/`, UPLOAD_TICKET_SECRET: SECRET }).uploadGateway).toEqual({
      url: GATEWAY_URL,
      ticketSeconds: 3600,
      ticketSecret: SECRET,
      ticketSecretParameter: undefined,
    });
    expect(
      configFromEnv({
        ...env,
        UPLOAD_GATEWAY_URL: GATEWAY_URL,
        UPLOAD_TICKET_SECRET_PARAMETER: '/registry/upload-ticket-secret',
        UPLOAD_TICKET_TTL_SECONDS: '900',
      }).uploadGateway,
    ).toEqual({ url: GATEWAY_URL, ticketSeconds: 900, ticketSecret: undefined, ticketSecretParameter: '/registry/upload-ticket-secret' });
  });

  it('refuses a gateway without a secret', () => {
    expect(() => configFromEnv({ ...env, UPLOAD_GATEWAY_URL: GATEWAY_URL })).toThrow(/UPLOAD_TICKET_SECRET/);
  });

  it('loads the secret from its SSM SecureString parameter, decrypted', async () => {
    const ssm = mockClient(SSMClient);
    ssm.on(GetParameterCommand, { Name: '/registry/upload-ticket-secret', WithDecryption: true }).resolves({ Parameter: { Value: SECRET } });
    const config = {
      ...baseConfig,
      uploadGateway: { url: GATEWAY_URL, ticketSeconds: 3600, ticketSecretParameter: '/registry/upload-ticket-secret' },
    };
    const loaded = await withUploadTicketSecret(config, new SSMClient({ region: 'us-east-1' }));
    expect(loaded.uploadGateway?.ticketSecret).toBe(SECRET);
    ssm.restore();
  });

  it('refuses a short secret at start-up rather than on the first upload', async () => {
    const config = { ...baseConfig, uploadGateway: { url: GATEWAY_URL, ticketSeconds: 3600, ticketSecret: 'short' } };
    await expect(withUploadTicketSecret(config)).rejects.toThrow(/at least 32/);
  });
});

describe('TicketAuthorizer', () => {
  const tickets = new UploadTickets([SECRET], 3600);
  const authorizer = new TicketAuthorizer(tickets, REGISTRY_URL);
  const uploadPath = (name: string, session: string) => `/v2/${name}/blobs/uploads/${session}`;

  it('lets every request of the ticket’s own session through, as a caller that may push only there', async () => {
    const ticket = tickets.issue('team/app', SESSION);
    for (const method of ['PATCH', 'PUT', 'GET', 'DELETE']) {
      const caller = await authorizer.authorize(request(method, uploadPath('team/app', SESSION), { ticket, digest: 'sha256:00' }), push('team/app'));
      expect(caller.holds('team/app', 'push')).toBe(true);
      expect(caller.holds('team/app', 'pull')).toBe(false);
      expect(caller.holds('team/other', 'push')).toBe(false);
    }
  });

  it('answers 401 for a missing, forged or expired ticket, and says where to get a fresh one', async () => {
    const time = clock();
    const expiring = new UploadTickets([SECRET], 60, time.now).issue('team/app', SESSION);
    const forged = new UploadTickets([OTHER_SECRET], 3600).issue('team/app', SESSION);
    const valid = tickets.issue('team/app', SESSION);
    const cases: Array<[string, Record<string, string | string[]>, RegExp]> = [
      ['missing', {}, /ticket is required/],
      ['twice', { ticket: [valid, valid] }, /ticket is required/],
      ['forged', { ticket: forged }, /not valid/],
      ['expired', { ticket: expiring }, /expired/],
    ];
    for (const [what, query, message] of cases) {
      const error = await refusal(authorizer.authorize(request('PATCH', uploadPath('team/app', SESSION), query), push('team/app')));
      expect(error.status, what).toBe(401);
      expect(error.code, what).toBe('UNAUTHORIZED');
      expect(error.message, what).toMatch(message);
      expect(error.message, what).toContain(`GET ${REGISTRY_URL}/v2/team/app/blobs/uploads/${SESSION}`);
    }
  });

  it('answers 403 for an authentic ticket of another repository or session, or without the action', async () => {
    const ticket = tickets.issue('team/app', SESSION);
    const otherRepository = await refusal(authorizer.authorize(request('PATCH', uploadPath('team/other', SESSION), { ticket }), push('team/other')));
    const otherSession = await refusal(authorizer.authorize(request('PATCH', uploadPath('team/app', OTHER_SESSION), { ticket }), push('team/app')));
    const statusOnly = tickets.issue('team/app', SESSION, ['get']);
    const notAllowed = await refusal(authorizer.authorize(request('PUT', uploadPath('team/app', SESSION), { ticket: statusOnly }), push('team/app')));
    for (const error of [otherRepository, otherSession, notAllowed]) {
      expect(error.status).toBe(403);
      expect(error.code).toBe('DENIED');
    }
  });

  it('refuses everything but upload-session requests, naming the registry, even with a valid ticket', async () => {
    const ticket = tickets.issue('team/app', SESSION);
    const others: Array<[string, string, AccessRequirement]> = [
      ['GET', '/v2/', { kind: 'login' }],
      ['GET', '/v2/_catalog', { kind: 'catalog' }],
      ['POST', '/v2/team/app/blobs/uploads/', push('team/app')],
      ['PUT', '/v2/team/app/manifests/latest', push('team/app')],
      ['GET', '/v2/team/app/manifests/latest', { kind: 'repository', name: 'team/app', action: 'pull' }],
      ['GET', `/v2/team/app/blobs/sha256:${'0'.repeat(64)}`, { kind: 'repository', name: 'team/app', action: 'pull' }],
    ];
    for (const [method, path, requirement] of others) {
      const error = await refusal(authorizer.authorize(request(method, path, { ticket }), requirement));
      expect(error.status, `${method} ${path}`).toBe(403);
      expect(error.message).toContain(REGISTRY_URL);
      expect(error.detail).toEqual({ registry: REGISTRY_URL });
    }
  });
});

describe('the upload gateway handler', () => {
  // The authorizer answers before any storage is touched, so these need no stand-ins.
  const config = { ...baseConfig, uploadGateway: { url: GATEWAY_URL, ticketSeconds: 3600, ticketSecret: SECRET } };
  const handler = createUploadGatewayHandler(createServices(config, createAwsClients(config)), silentLogger, REGISTRY_URL, {
    maxConcurrentUploads: 8,
  });

  it('answers the load balancer’s health check', async () => {
    const response = await handler(request('GET', '/healthz'));
    expect(response.status).toBe(200);
    expect(JSON.parse(String(response.body))).toEqual({ status: 'ok' });
  });

  it('refuses pulls, pushes of manifests and new sessions with an OCI error naming the registry', async () => {
    for (const [method, path] of [
      ['GET', '/v2/team/app/manifests/latest'],
      ['PUT', '/v2/team/app/manifests/latest'],
      ['POST', '/v2/team/app/blobs/uploads/'],
    ] as const) {
      const response = await handler(request(method, path));
      expect(response.status).toBe(403);
      const body = JSON.parse(String(response.body)) as { errors: Array<{ code: string; message: string }> };
      expect(body.errors[0]?.code).toBe('DENIED');
      expect(body.errors[0]?.message).toContain(REGISTRY_URL);
    }
  });

  it('refuses an upload request without a ticket with 401 UNAUTHORIZED', async () => {
    const response = await handler(request('PATCH', `/v2/team/app/blobs/uploads/${SESSION}`));
    expect(response.status).toBe(401);
    expect(String(response.body)).toContain('UNAUTHORIZED');
  });
});
