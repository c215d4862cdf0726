import { createHash, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  frontDoorFunctionCode,
  MAX_FUNCTION_BYTES,
  MAX_SINGLE_PUT_BYTES,
  ORIGIN_IDS,
  type FrontDoorSettings,
} from '../../../functions/edge/front-door-code.js';
import { UploadTickets } from '../../../registry/services/uploads/upload-tickets.js';
import { objectKeys } from '../../../registry/storage/keys.js';
import {
  loadCloudFrontFunction,
  type CfRequest,
  type CfResponse,
  type CfValue,
} from '../../../scripts/local/deployed-shape/cloudfront-function-sandbox.js';

const SECRET = 's'.repeat(40);
const OLD_SECRET = 'o'.repeat(40);
const ORIGIN_SECRET = 'origin-secret-value';
const KVS = { 'ticket-secrets': `${SECRET},${OLD_SECRET}`, 'origin-secret': ORIGIN_SECRET };
const NAME = 'team/app';
const BODY = Buffer.from('layer bytes');
const DIGEST = `sha256:${createHash('sha256').update(BODY).digest('hex')}`;

/** A viewer request, in short: headers and query values as the viewer sent them. */
interface CloudFrontFunctionEvent {
  method: string;
  uri: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  viewerIp?: string;
}

/** What the handler returned, the request sent on or the response it generated, as one shape. */
type FunctionResult = Partial<CfRequest> & Omit<Partial<CfResponse>, 'headers'> & { headers: Record<string, CfValue> };

/**
 * The function as the deployed shape's CloudFront emulator runs it (the cloudfront-js-2.0 sandbox
 * in scripts/local/deployed-shape/), with the origins the CDK gives the distribution for `settings`.
 */
function frontDoor(settings: FrontDoorSettings) {
  const originIds = [
    ORIGIN_IDS.api,
    ORIGIN_IDS.uploads,
    ...(settings.gateway ? [ORIGIN_IDS.gateway] : []),
    ...(settings.replicaRegions ?? []).map(ORIGIN_IDS.replica),
  ];
  const code = loadCloudFrontFunction(frontDoorFunctionCode(settings), { originIds, kvs: new Map(Object.entries(KVS)) });
  return async (event: CloudFrontFunctionEvent): Promise<{ result: FunctionResult; origin?: string }> => {
    const values = (entries: Record<string, string> | undefined) =>
      Object.fromEntries(Object.entries(entries ?? {}).map(([name, value]) => [name.toLowerCase(), { value }]));
    const { result, originId } = await code.run({
      version: '1.0',
      context: { distributionDomainName: 'd111111abcdef8.cloudfront.net', distributionId: 'E1', eventType: 'viewer-request', requestId: 'r' },
      viewer: { ip: event.viewerIp ?? '198.51.100.7' },
      request: { method: event.method, uri: event.uri, querystring: values(event.query), headers: values(event.headers), cookies: {} },
    });
    const returned = 'request' in result ? result.request : result.response;
    return { result: { ...returned, headers: returned.headers ?? {} }, origin: originId };
  };
}

const plain = frontDoor({ primaryRegion: 'us-east-1' });

function directPut(session: string, ticket: string, extra: Partial<CloudFrontFunctionEvent> = {}): CloudFrontFunctionEvent {
  return {
    method: 'PUT',
    uri: `/v2/${NAME}/blobs/uploads/${session}`,
    query: { digest: DIGEST, ticket },
    headers: { 'content-length': String(BODY.length), authorization: 'Bearer abc', host: 'registry.example.com' },
    ...extra,
  };
}

function errorOf(result: FunctionResult): { status?: number; code: string; message: string } {
  const body = JSON.parse(typeof result.body === 'string' ? result.body : result.body!.data);
  expect(result.headers['content-type']!.value).toBe('application/json');
  return { status: result.statusCode, code: body.errors[0].code, message: body.errors[0].message };
}

describe('the front door function: monolithic PUT straight to S3', () => {
  it('sends a PUT with a valid ticket to the uploads origin at the session key, with the checksum S3 verifies', async () => {
    const session = randomUUID();
    const ticket = new UploadTickets([SECRET], 3600).issue(NAME, session);
    const { result, origin } = await plain(
      directPut(session, ticket, { headers: { 'content-length': '11', 'x-amz-acl': 'public-read', authorization: 'Bearer abc' } }),
    );
    expect(origin).toBe('uploads');
    expect(result.uri).toBe(`/${objectKeys.directUpload(DIGEST, session)}`);
    expect(result.querystring).toEqual({});
    expect(result.headers['x-amz-checksum-sha256'].value).toBe(createHash('sha256').update(BODY).digest('base64'));
    expect(result.headers['x-amz-meta-registry-repository'].value).toBe(NAME);
    expect(result.headers['x-amz-meta-registry-session'].value).toBe(session);
    // Nothing of the viewer's reaches S3 that could change the object or its signature.
    expect(result.headers.authorization).toBeUndefined();
    expect(result.headers['x-amz-acl']).toBeUndefined();
    expect(result.headers['x-registry-origin-secret']).toBeUndefined();
  });

  it('takes tickets signed with an older secret still listed in the store', async () => {
    const session = randomUUID();
    const ticket = new UploadTickets([OLD_SECRET], 3600).issue(NAME, session);
    expect((await plain(directPut(session, ticket))).origin).toBe('uploads');
  });

  it('refuses forged, expired, other-repository and other-session tickets with OCI errors', async () => {
    const session = randomUUID();
    const forged = new UploadTickets(['f'.repeat(40)], 3600).issue(NAME, session);
    const expired = new UploadTickets([SECRET], 1, () => Date.now() - 10_000).issue(NAME, session);
    const otherRepository = new UploadTickets([SECRET], 3600).issue('team/other', session);
    const otherSession = new UploadTickets([SECRET], 3600).issue(NAME, randomUUID());
    const patchOnly = new UploadTickets([SECRET], 3600).issue(NAME, session, ['patch']);
    const cases: [string, number, string, string][] = [
      [forged, 401, 'UNAUTHORIZED', 'not valid'],
      ['v1.e30.AAAA', 401, 'UNAUTHORIZED', 'not valid'],
      ['garbage', 401, 'UNAUTHORIZED', 'not valid'],
      [expired, 401, 'UNAUTHORIZED', 'expired'],
      [otherRepository, 403, 'DENIED', 'another upload'],
      [otherSession, 403, 'DENIED', 'another upload'],
      [patchOnly, 403, 'DENIED', 'another upload'],
    ];
    for (const [ticket, status, code, text] of cases) {
      const { result, origin } = await plain(directPut(session, ticket));
      expect(origin, ticket).toBeUndefined();
      const error = errorOf(result);
      expect(error, ticket).toMatchObject({ status, code });
      expect(error.message).toContain(text);
    }
  });

  it('refuses a body beyond S3 single-PUT limit with SIZE_INVALID', async () => {
    const session = randomUUID();
    const ticket = new UploadTickets([SECRET], 3600).issue(NAME, session);
    const { result, origin } = await plain(directPut(session, ticket, { headers: { 'content-length': String(MAX_SINGLE_PUT_BYTES + 1) } }));
    expect(origin).toBeUndefined();
    expect(errorOf(result)).toMatchObject({ status: 400, code: 'SIZE_INVALID' });
    const atLimit = await plain(directPut(session, ticket, { headers: { 'content-length': String(MAX_SINGLE_PUT_BYTES) } }));
    expect(atLimit.origin).toBe('uploads');
  });

  it('leaves sha512, PATCH, empty, chunked and ticketless PUTs to the registry, with the origin secret', async () => {
    const session = randomUUID();
    const ticket = new UploadTickets([SECRET], 3600).issue(NAME, session);
    const sha512 = `sha512:${createHash('sha512').update(BODY).digest('hex')}`;
    const requests: CloudFrontFunctionEvent[] = [
      directPut(session, ticket, { query: { digest: sha512, ticket } }),
      directPut(session, ticket, { method: 'PATCH' }),
      directPut(session, ticket, { headers: { 'content-length': '0' } }),
      directPut(session, ticket, { headers: { 'transfer-encoding': 'chunked' } }),
      directPut(session, ticket, { headers: { 'content-length': '11', 'transfer-encoding': 'chunked' } }),
      directPut(session, ticket, { query: { digest: DIGEST } }),
      { method: 'POST', uri: `/v2/${NAME}/blobs/uploads/` },
      { method: 'GET', uri: `/v2/${NAME}/blobs/uploads/${session}` },
      { method: 'DELETE', uri: `/v2/${NAME}/blobs/uploads/${session}` },
    ];
    for (const request of requests) {
      const { result, origin } = await plain(request);
      expect(origin, `${request.method} ${JSON.stringify(request.query)} ${JSON.stringify(request.headers)}`).toBe('api');
      expect(result.uri).toBe(request.uri);
      expect(result.headers['x-registry-origin-secret']!.value).toBe(ORIGIN_SECRET);
    }
  });

  it('overwrites an origin secret the viewer sent, and passes the viewer address', async () => {
    const { result } = await plain({
      method: 'GET',
      uri: '/v2/',
      headers: { 'x-registry-origin-secret': 'guess', 'x-registry-viewer-address': '10.0.0.1' },
      viewerIp: '203.0.113.9',
    });
    expect(result.headers['x-registry-origin-secret']!.value).toBe(ORIGIN_SECRET);
    expect(result.headers['x-registry-viewer-address'].value).toBe('203.0.113.9');
  });
});

describe('the front door function: origins', () => {
  const replicated = frontDoor({ primaryRegion: 'us-east-1', replicaRegions: ['eu-west-1', 'ap-northeast-1'] });

  it('serves pulls from the replica on the viewer continent, everything else from the primary', async () => {
    const pull = (method: string, uri: string, country: string) => replicated({ method, uri, headers: { 'cloudfront-viewer-country': country } });
    expect((await pull('GET', `/v2/${NAME}/manifests/latest`, 'DE')).origin).toBe('api-eu-west-1');
    expect((await pull('HEAD', `/v2/${NAME}/blobs/${DIGEST}`, 'FR')).origin).toBe('api-eu-west-1');
    expect((await pull('GET', `/v2/${NAME}/blobs/${DIGEST}`, 'JP')).origin).toBe('api-ap-northeast-1');
    expect((await pull('GET', `/v2/${NAME}/manifests/latest`, 'US')).origin).toBe('api');
    expect((await pull('GET', `/v2/${NAME}/manifests/latest`, 'BR')).origin).toBe('api');
    expect((await replicated({ method: 'GET', uri: `/v2/${NAME}/manifests/latest` })).origin).toBe('api');
    // Pushes, upload status and the token endpoint stay with the primary.
    expect((await pull('PUT', `/v2/${NAME}/manifests/latest`, 'DE')).origin).toBe('api');
    expect((await pull('GET', `/v2/${NAME}/blobs/uploads/${randomUUID()}`, 'DE')).origin).toBe('api');
    expect((await pull('GET', '/token', 'DE')).origin).toBe('api');
  });

  it('sends upload PATCH and PUT to the gateway when there is one', async () => {
    const gateway = frontDoor({ primaryRegion: 'us-east-1', gateway: true });
    const session = randomUUID();
    const uri = `/v2/${NAME}/blobs/uploads/${session}`;
    const patched = await gateway({ method: 'PATCH', uri, headers: { 'transfer-encoding': 'chunked' } });
    expect(patched.origin).toBe('gateway');
    expect(patched.result.headers['x-registry-origin-secret']!.value).toBe(ORIGIN_SECRET);
    expect((await gateway({ method: 'PUT', uri, query: { digest: DIGEST }, headers: { 'content-length': '0' } })).origin).toBe('gateway');
    expect((await gateway({ method: 'POST', uri: `/v2/${NAME}/blobs/uploads/` })).origin).toBe('api');
    // A monolithic PUT with a ticket still goes straight to S3.
    const ticket = new UploadTickets([SECRET], 3600).issue(NAME, session);
    expect((await gateway(directPut(session, ticket))).origin).toBe('uploads');
  });
});

describe('the front door function: the Docker mirror entry', () => {
  const mirror = frontDoor({ primaryRegion: 'us-east-1', entry: 'docker-mirror' });

  it('marks every request of the mirror distribution, and the main distribution drops a copy a viewer sends', async () => {
    const marked = await mirror({ method: 'GET', uri: '/v2/library/nginx/manifests/latest', headers: { 'x-registry-entry': 'anything' } });
    expect(marked.origin).toBe('api');
    expect(marked.result.headers['x-registry-entry']!.value).toBe('docker-mirror');
    expect(marked.result.headers['x-registry-origin-secret']!.value).toBe(ORIGIN_SECRET);
    const forged = await plain({ method: 'GET', uri: '/v2/library/nginx/manifests/latest', headers: { 'x-registry-entry': 'docker-mirror' } });
    expect(forged.result.headers['x-registry-entry']).toBeUndefined();
  });

  it('sends no upload straight to S3 there, ticket or not: the registry refuses pushes on the mirror', async () => {
    const session = randomUUID();
    const ticket = new UploadTickets([SECRET], 3600).issue(NAME, session);
    expect((await mirror(directPut(session, ticket))).origin).toBe('api');
  });
});

describe('the front door function code', () => {
  it('fits CloudFront limit in every shape', () => {
    const sizes = [
      frontDoorFunctionCode({ primaryRegion: 'us-east-1' }),
      frontDoorFunctionCode({
        primaryRegion: 'us-east-1',
        gateway: true,
        replicaRegions: ['eu-west-1', 'eu-central-1', 'ap-northeast-1', 'sa-east-1', 'ap-southeast-2'],
      }),
      frontDoorFunctionCode({ primaryRegion: 'us-east-1', entry: 'docker-mirror', replicaRegions: ['eu-west-1', 'ap-northeast-1'] }),
    ].map((code) => Buffer.byteLength(code));
    for (const size of sizes) expect(size).toBeLessThanOrEqual(MAX_FUNCTION_BYTES);
  });
});
