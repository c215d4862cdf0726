import { createHash } from 'node:crypto';
import { BatchGetCommand, GetCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { describe, expect, it, vi } from 'vitest';
import type { RegistryConfig } from '../../../registry/config/config.js';
import { lambdaToRegistryRequest, registryToLambdaResponse } from '../../../registry/transport/lambda-adapter.js';
import type { BodyStream } from '../../../registry/model/http.js';
import { silentLogger } from '../../../registry/support/logger.js';
import { createRegistry } from '../../../registry/api/registry.js';
import { createServices } from '../../../registry/services/services.js';
import { createAwsClients } from '../../../registry/storage/aws-clients.js';
import { pushReads } from '../../support/push-reads.js';
import { lambdaEvent } from '../../support/lambda-event.js';
import { useAwsMocks } from '../../support/aws-mocks.js';

const TABLE = 'adapter-table';
const config: RegistryConfig = {
  region: 'us-east-1',
  tableName: TABLE,
  bucketName: 'adapter-bucket',
  presignExpirySeconds: 300,
  uploadSessionTtlSeconds: 3600,
};
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const sha256 = (bytes: Uint8Array | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const CONFIG = sha256('config');
const LAYER = sha256('layer');

const { ddb } = useAwsMocks();
const event = lambdaEvent;

async function collect(body: BodyStream | undefined): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body ?? []) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Bytes that do not survive a trip through a UTF-8 string: every byte value, including invalid sequences. */
const BINARY = new Uint8Array(Array.from({ length: 512 }, (_, i) => (i * 7 + (i >> 8)) & 0xff));

/** A manifest whose digest depends on its exact bytes: odd whitespace and non-ASCII annotations. */
function manifestBytes(): Uint8Array {
  const text =
    '{\n  "schemaVersion" : 2,\r\n\t"mediaType": "' +
    OCI_MANIFEST +
    '",\n  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "' +
    CONFIG +
    '", "size": 10},\n  "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "' +
    LAYER +
    '", "size": 20}],\n  "annotations": {"description": "caf\u00e9 \u2615 \u65e5\u672c \\u00e9"}\n}   \n';
  return new TextEncoder().encode(text);
}

describe('lambdaToRegistryRequest', () => {
  it('decodes a base64 body to the exact bytes', async () => {
    const request = lambdaToRegistryRequest(
      event('PATCH', '/v2/a/blobs/uploads/x', { body: Buffer.from(BINARY).toString('base64'), isBase64Encoded: true }),
    );
    expect((await collect(request.body)).equals(Buffer.from(BINARY))).toBe(true);
  });

  it('takes a plain body as UTF-8 bytes', async () => {
    const request = lambdaToRegistryRequest(event('PUT', '/v2/a/manifests/t', { body: '{"a":"é☕"}' }));
    expect((await collect(request.body)).equals(Buffer.from('{"a":"é☕"}', 'utf8'))).toBe(true);
  });

  it('has no body when the event has none', () => {
    expect(lambdaToRegistryRequest(event('GET', '/v2/')).body).toBeUndefined();
  });

  it('parses rawQueryString, decoding escapes', () => {
    const request = lambdaToRegistryRequest(
      event('GET', '/v2/team/app/tags/list', { rawQueryString: 'n=2&last=v1.0&digest=sha256%3Aabc&mount=a&mount=b' }),
    );
    expect(request.query.get('n')).toBe('2');
    expect(request.query.get('last')).toBe('v1.0');
    expect(request.query.get('digest')).toBe('sha256:abc');
    expect(request.query.getAll('mount')).toEqual(['a', 'b']);
    expect(request.path).toBe('/v2/team/app/tags/list');
    expect(request.method).toBe('GET');
  });

  it('an empty rawQueryString is an empty query', () => {
    expect([...lambdaToRegistryRequest(event('GET', '/v2/')).query.keys()]).toEqual([]);
  });

  it('gives header names in lower case', () => {
    const request = lambdaToRegistryRequest(event('PUT', '/v2/a/manifests/t', { headers: { 'Content-Type': OCI_MANIFEST, 'CONTENT-LENGTH': '12' } }));
    expect(request.headers['content-type']).toBe(OCI_MANIFEST);
    expect(request.headers['content-length']).toBe('12');
  });
});

describe('registryToLambdaResponse', () => {
  it('a HEAD response has no body even when the registry produced one', () => {
    const result = registryToLambdaResponse(
      { status: 200, headers: { 'Content-Length': '3', 'Docker-Content-Digest': sha256('abc') }, body: new Uint8Array([1, 2, 3]) },
      'HEAD',
    );
    expect(result.statusCode).toBe(200);
    expect(result.body).toBeUndefined();
    expect(result.isBase64Encoded).toBeFalsy();
    expect(result.headers).toEqual({ 'Content-Length': '3', 'Docker-Content-Digest': sha256('abc') });
  });

  it('a byte body goes back base64-encoded and decodes to the exact bytes', () => {
    const result = registryToLambdaResponse({ status: 200, headers: {}, body: BINARY }, 'GET');
    expect(result.isBase64Encoded).toBe(true);
    expect(Buffer.from(result.body!, 'base64').equals(Buffer.from(BINARY))).toBe(true);
  });

  it('a string body is sent as its UTF-8 bytes', () => {
    const result = registryToLambdaResponse({ status: 404, headers: {}, body: '{"m":"é"}' }, 'GET');
    expect(Buffer.from(result.body!, 'base64').toString('utf8')).toBe('{"m":"é"}');
  });

  it('a response without a body has none', () => {
    const result = registryToLambdaResponse({ status: 202, headers: { 'Content-Length': '0' } }, 'DELETE');
    expect(result.body).toBeUndefined();
    expect(result.statusCode).toBe(202);
  });
});

describe('through the registry', () => {
  const registry = createRegistry(createServices(config, createAwsClients(config)), silentLogger);
  const handle = async (e: APIGatewayProxyEventV2) =>
    registryToLambdaResponse(await registry(lambdaToRegistryRequest(e)), e.requestContext.http.method);

  function storeManifest(bytes: Uint8Array) {
    const digest = sha256(bytes);
    ddb.on(GetCommand, { Key: { PK: 'REPO#team/app', SK: 'TAG#v1' } }).resolves({ Item: { digest } });
    ddb
      .on(GetCommand, { Key: { PK: 'REPO#team/app', SK: `MANIFEST#${digest}` } })
      .resolves({ Item: { digest, mediaType: OCI_MANIFEST, size: bytes.byteLength, body: bytes } });
    return digest;
  }

  it('a base64 manifest PUT is stored as the exact bytes and answered with their digest', async () => {
    ddb.on(BatchGetCommand).resolves(pushReads(TABLE, 'team/app', CONFIG, LAYER));
    ddb.on(TransactWriteCommand).resolves({});
    ddb.on(GetCommand).resolves({}); // the GC epoch: no run yet
    const bytes = manifestBytes();
    const result = await handle(
      event('PUT', '/v2/team/app/manifests/v1', {
        headers: { 'content-type': OCI_MANIFEST, 'content-length': String(bytes.byteLength) },
        body: Buffer.from(bytes).toString('base64'),
        isBase64Encoded: true,
      }),
    );
    expect(result.statusCode).toBe(201);
    expect(result.headers?.['Docker-Content-Digest']).toBe(sha256(bytes));
    const items = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!.flatMap((item) => (item.Put ? [item.Put.Item!] : []));
    const stored = items.find((item) => item.SK === `MANIFEST#${sha256(bytes)}`)!;
    expect(Buffer.from(stored.body as Uint8Array).equals(Buffer.from(bytes))).toBe(true);
  });

  it('a manifest GET answers base64 that decodes to the exact stored bytes', async () => {
    const bytes = manifestBytes();
    const digest = storeManifest(bytes);
    const result = await handle(event('GET', '/v2/team/app/manifests/v1', { headers: { accept: OCI_MANIFEST } }));
    expect(result.statusCode).toBe(200);
    expect(result.isBase64Encoded).toBe(true);
    const decoded = Buffer.from(result.body!, 'base64');
    expect(decoded.equals(Buffer.from(bytes))).toBe(true);
    expect(sha256(decoded)).toBe(digest);
    expect(result.headers?.['Docker-Content-Digest']).toBe(digest);
    expect(result.headers?.['Content-Length']).toBe(String(bytes.byteLength));
    expect(result.headers?.['Docker-Distribution-API-Version']).toBe('registry/2.0');
  });

  it('a manifest HEAD answers the headers and no body', async () => {
    const bytes = manifestBytes();
    const digest = storeManifest(bytes);
    const result = await handle(event('HEAD', '/v2/team/app/manifests/v1'));
    expect(result.statusCode).toBe(200);
    expect(result.body).toBeUndefined();
    expect(result.headers?.['Content-Length']).toBe(String(bytes.byteLength));
    expect(result.headers?.['Docker-Content-Digest']).toBe(digest);
    expect(result.headers?.['Content-Type']).toBe(OCI_MANIFEST);
  });

  it('a HEAD that misses answers 404 with no body', async () => {
    ddb.on(GetCommand).resolves({});
    const result = await handle(event('HEAD', '/v2/team/app/manifests/nope'));
    expect(result.statusCode).toBe(404);
    expect(result.body).toBeUndefined();
  });

  it('the query string reaches the endpoint: tags/list?n=-1 is refused', async () => {
    const result = await handle(event('GET', '/v2/team/app/tags/list', { rawQueryString: 'n=-1' }));
    expect(result.statusCode).toBe(400);
    expect(JSON.parse(Buffer.from(result.body!, 'base64').toString('utf8')).errors[0].code).toBeDefined();
  });
});

describe('the Lambda entry point (functions/registry-api.ts)', () => {
  async function loadHandler() {
    vi.stubEnv('TABLE_NAME', TABLE);
    vi.stubEnv('BUCKET_NAME', 'entry-bucket');
    vi.stubEnv('AWS_REGION', 'us-east-1');
    vi.stubEnv('DYNAMODB_ENDPOINT', '');
    vi.stubEnv('S3_ENDPOINT', '');
    const module = await import('../../../functions/registry-api.js');
    vi.unstubAllEnvs();
    return module.handler as (e: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;
  }

  it('answers the version check and returns manifests as base64 of the exact bytes', async () => {
    const handler = await loadHandler();
    const context = {} as Context;
    const check = await handler(event('GET', '/v2/'), context);
    expect(check.statusCode).toBe(200);
    expect(check.headers?.['Docker-Distribution-API-Version']).toBe('registry/2.0');

    const bytes = manifestBytes();
    const digest = sha256(bytes);
    ddb.on(GetCommand, { Key: { PK: 'REPO#team/app', SK: `MANIFEST#${digest}` } }).resolves({
      Item: { digest, mediaType: OCI_MANIFEST, size: bytes.byteLength, body: bytes },
    });
    const result = await handler(event('GET', `/v2/team/app/manifests/${digest}`), context);
    expect(result.statusCode).toBe(200);
    expect(result.isBase64Encoded).toBe(true);
    expect(Buffer.from(result.body!, 'base64').equals(Buffer.from(bytes))).toBe(true);
  });
});
