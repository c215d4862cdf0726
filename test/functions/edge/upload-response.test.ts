import { randomUUID } from 'node:crypto';
import type { CloudFrontHeaders, CloudFrontResponseEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { handler } from '../../../functions/edge/upload-response.js';
import { objectKeys } from '../../../registry/storage/keys.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const NAME = 'team/app';

function headers(values: Record<string, string>): CloudFrontHeaders {
  return Object.fromEntries(Object.entries(values).map(([key, value]) => [key.toLowerCase(), [{ key, value }]]));
}

function event(
  request: { method: string; uri: string; headers?: Record<string, string> },
  status: number,
  responseHeaders: Record<string, string> = {},
) {
  return {
    Records: [
      {
        cf: {
          config: { distributionDomainName: 'd1.cloudfront.net', distributionId: 'E1', eventType: 'origin-response', requestId: 'r' },
          request: { clientIp: '203.0.113.1', method: request.method, uri: request.uri, querystring: '', headers: headers(request.headers ?? {}) },
          response: { status: String(status), statusDescription: 'x', headers: headers(responseHeaders) },
        },
      },
    ],
  } as CloudFrontResponseEvent;
}

function directPut(status: number, size = 1024) {
  const session = randomUUID();
  return event(
    {
      method: 'PUT',
      uri: `/${objectKeys.directUpload(DIGEST, session)}`,
      headers: { 'Content-Length': String(size), 'X-Amz-Meta-Registry-Repository': NAME, 'X-Amz-Meta-Registry-Session': session },
    },
    status,
    { ETag: '"abc"', 'x-amz-request-id': 'R', 'x-amz-checksum-sha256': 'q83vEjRWeJA=', Server: 'AmazonS3', Date: 'Wed, 02 Dec 2026 00:00:00 GMT' },
  );
}

function errorOf(result: Awaited<ReturnType<typeof handler>>) {
  expect(result.headers!['content-type']![0]!.value).toBe('application/json');
  const body = JSON.parse(result.body as string);
  return { status: Number(result.status), code: body.errors[0].code as string, message: body.errors[0].message as string };
}

describe('the upload origin-response function', () => {
  it('turns S3 accepting a direct PUT into 201 with the blob Location and digest, and none of S3 headers', async () => {
    const result = await handler(directPut(200));
    expect(result.status).toBe('201');
    expect(result.headers!.location![0]!.value).toBe(`/v2/${NAME}/blobs/${DIGEST}`);
    expect(result.headers!['docker-content-digest']![0]!.value).toBe(DIGEST);
    expect(result.headers!['content-length']![0]!.value).toBe('0');
    expect(result.headers!.etag).toBeUndefined();
    expect(result.headers!['x-amz-request-id']).toBeUndefined();
    expect(result.headers!['x-amz-checksum-sha256']).toBeUndefined();
    expect(result.headers!.server).toBeUndefined();
  });

  it('turns S3 refusing the checksum into DIGEST_INVALID, and a body beyond a single PUT into SIZE_INVALID', async () => {
    expect(errorOf(await handler(directPut(400)))).toMatchObject({ status: 400, code: 'DIGEST_INVALID' });
    expect(errorOf(await handler(directPut(400, 5 * 1024 ** 3 + 1)))).toMatchObject({ status: 400, code: 'SIZE_INVALID' });
    expect(errorOf(await handler(directPut(503)))).toMatchObject({ status: 429, code: 'TOOMANYREQUESTS' });
    const denied = errorOf(await handler(directPut(403)));
    expect(denied.status).toBeGreaterThanOrEqual(500);
  });

  it('turns API Gateway bare refusal of a large PATCH or PUT into an OCI error naming the limit and the ways out', async () => {
    const uri = `/v2/${NAME}/blobs/uploads/${randomUUID()}`;
    const cases = [
      event({ method: 'PATCH', uri, headers: { 'Content-Length': String(20 * 1024 * 1024) } }, 413),
      event({ method: 'PATCH', uri, headers: { 'Transfer-Encoding': 'chunked' } }, 500),
      event({ method: 'PUT', uri, headers: { 'Content-Length': String(8 * 1024 * 1024) } }, 500),
    ];
    for (const input of cases) {
      const error = errorOf(await handler(input));
      expect(error).toMatchObject({ status: 413, code: 'SIZE_INVALID' });
      expect(error.message).toContain('4.4 MiB');
      expect(error.message).toContain('upload gateway');
      expect(error.message).toContain('npm run push');
    }
  });

  it('passes the registry answers, and bare 500s of small bodies, unchanged', async () => {
    const uri = `/v2/${NAME}/blobs/uploads/${randomUUID()}`;
    const unchanged = [
      event({ method: 'PATCH', uri, headers: { 'Content-Length': '100' } }, 202, {
        'Docker-Distribution-API-Version': 'registry/2.0',
        Location: uri,
      }),
      event({ method: 'PUT', uri, headers: { 'Content-Length': '0' } }, 400, { 'Docker-Distribution-API-Version': 'registry/2.0' }),
      event({ method: 'PATCH', uri, headers: { 'Transfer-Encoding': 'chunked' } }, 500, { 'Docker-Distribution-API-Version': 'registry/2.0' }),
      event({ method: 'PATCH', uri, headers: { 'Content-Length': '100' } }, 500),
      event({ method: 'GET', uri }, 413),
    ];
    for (const input of unchanged) {
      const original = input.Records[0]!.cf.response;
      expect(await handler(input)).toBe(original);
    }
  });
});
