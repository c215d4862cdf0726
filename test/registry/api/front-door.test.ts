import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { behindFrontDoor } from '../../../registry/api/front-door.js';
import { configFromEnv, type RegistryConfig } from '../../../registry/config/config.js';
import type { RegistryHandler, RegistryRequest } from '../../../registry/model/http.js';
import { UploadTickets, uploadLocation, withUploadTicketSecret } from '../../../registry/services/uploads/upload-tickets.js';
import { silentLogger } from '../../../registry/support/logger.js';

const REGISTRY_URL = 'https://d111111abcdef8.cloudfront.net';
const TICKET_SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const ORIGIN_SECRET = 'origin-secret-0123456789';
const SESSION = '0b6c7f3e-2a51-4c39-9d0e-6a1f2b3c4d5e';
const baseConfig: RegistryConfig = {
  region: 'us-east-1',
  tableName: 't',
  bucketName: 'b',
  presignExpirySeconds: 300,
  uploadSessionTtlSeconds: 86_400,
};
const frontDoor = { url: REGISTRY_URL, ticketSeconds: 3600, ticketSecret: TICKET_SECRET, originSecret: ORIGIN_SECRET };

function request(headers: Record<string, string> = {}): RegistryRequest {
  return { method: 'GET', path: '/v2/', query: new URLSearchParams(), headers, sourceIp: '130.176.0.1' };
}

describe('behind the front door', () => {
  const seen: RegistryRequest[] = [];
  const inner: RegistryHandler = async (incoming) => {
    seen.push(incoming);
    return { status: 200, headers: {} };
  };
  const handler = behindFrontDoor(inner, frontDoor, silentLogger);

  it('refuses a request without the origin secret with 403 DENIED naming the registry address', async () => {
    const attempts: Record<string, string>[] = [{}, { 'x-registry-origin-secret': 'guess' }, { 'x-registry-origin-secret': `${ORIGIN_SECRET}x` }];
    for (const headers of attempts) {
      const response = await handler(request(headers));
      expect(response.status).toBe(403);
      const body = JSON.parse(String(response.body));
      expect(body.errors[0]).toMatchObject({ code: 'DENIED', detail: { registry: REGISTRY_URL } });
      expect(body.errors[0].message).toContain(REGISTRY_URL);
    }
    expect(seen).toHaveLength(0);
  });

  it('passes a request with it on, its source the viewer address the front door saw, without the secret', async () => {
    const response = await handler(request({ 'x-registry-origin-secret': ORIGIN_SECRET, 'x-registry-viewer-address': '203.0.113.5' }));
    expect(response.status).toBe(200);
    expect(seen.at(-1)!.sourceIp).toBe('203.0.113.5');
    expect(seen.at(-1)!.headers['x-registry-origin-secret']).toBeUndefined();
  });

  it("marks a request the mirror distribution's function named as the Docker mirror entry, only with the secret", async () => {
    await handler(request({ 'x-registry-origin-secret': ORIGIN_SECRET, 'x-registry-entry': 'docker-mirror' }));
    expect(seen.at(-1)!.entry).toBe('docker-mirror');
    expect(seen.at(-1)!.headers['x-registry-entry']).toBeUndefined();
    await handler(request({ 'x-registry-origin-secret': ORIGIN_SECRET, 'x-registry-entry': 'anything-else' }));
    expect(seen.at(-1)!.entry).toBeUndefined();
    const before = seen.length;
    expect((await handler(request({ 'x-registry-entry': 'docker-mirror' }))).status).toBe(403);
    expect(seen).toHaveLength(before);
  });

  it('checks nothing without a configured origin secret (plain npm start)', async () => {
    expect(behindFrontDoor(inner, undefined, silentLogger)).toBe(inner);
    expect(behindFrontDoor(inner, { ...frontDoor, originSecret: undefined }, silentLogger)).toBe(inner);
  });

  it('answers upload Locations on the same host, with a ticket for exactly that session', () => {
    const location = uploadLocation({ ...baseConfig, frontDoor }, 'team/app', SESSION);
    const url = new URL(location, REGISTRY_URL);
    expect(location.startsWith(`/v2/team/app/blobs/uploads/${SESSION}?ticket=`)).toBe(true);
    const check = new UploadTickets([TICKET_SECRET], 3600).verify(url.searchParams.get('ticket')!);
    expect(check).toMatchObject({ valid: true, claims: { repository: 'team/app', sessionId: SESSION } });
  });

  it('is configured from the environment contract, and loads both secrets from SSM at start-up', async () => {
    const env = { TABLE_NAME: 't', BUCKET_NAME: 'b', PUBLIC_BASE_URL: `${REGISTRY_URL}/` };
    expect(configFromEnv(env).frontDoor).toBeUndefined();
    const parsed = configFromEnv({
      ...env,
      REGISTRY_FRONT_DOOR: 'true',
      UPLOAD_TICKET_SECRET_PARAMETER: '/r/ticket',
      ORIGIN_SECRET_PARAMETER: '/r/origin',
    }).frontDoor!;
    expect(parsed).toMatchObject({ url: REGISTRY_URL, ticketSecretParameter: '/r/ticket', originSecretParameter: '/r/origin', ticketSeconds: 3600 });
    const ssm = mockClient(SSMClient);
    ssm.on(GetParameterCommand, { Name: '/r/ticket', WithDecryption: true }).resolves({ Parameter: { Value: TICKET_SECRET } });
    ssm.on(GetParameterCommand, { Name: '/r/origin', WithDecryption: true }).resolves({ Parameter: { Value: ORIGIN_SECRET } });
    const loaded = await withUploadTicketSecret({ ...baseConfig, frontDoor: parsed }, new SSMClient({ region: 'us-east-1' }));
    expect(loaded.frontDoor).toMatchObject({ ticketSecret: TICKET_SECRET, originSecret: ORIGIN_SECRET });
    ssm.restore();
  });
});
