import { createHash } from 'node:crypto';
import {
  ConditionalCheckFailedException,
  InternalServerError,
  ProvisionedThroughputExceededException,
  ThrottlingException,
  TransactionCanceledException,
} from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DeleteCommand, GetCommand, PutCommand, QueryCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  NotFound,
  NoSuchKey,
  PutObjectCommand,
  UploadPartCommand,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { beforeEach, describe, expect, it } from 'vitest';
import type { RegistryConfig } from '../../../registry/config/config.js';
import type { RegistryRequest, RegistryResponse } from '../../../registry/model/http.js';
import type { Logger } from '../../../registry/support/logger.js';
import { createRegistry } from '../../../registry/api/registry.js';
import { createServices } from '../../../registry/services/services.js';
import { createAwsClients } from '../../../registry/storage/aws-clients.js';
import { ResumableDigest } from '../../../registry/services/uploads/resumable-digest.js';
import { pushReads } from '../../support/push-reads.js';
import { useAwsMocks } from '../../support/aws-mocks.js';

const TABLE = 'registry-table';
const BUCKET = 'registry-bucket';
const config: RegistryConfig = {
  region: 'us-east-1',
  tableName: TABLE,
  bucketName: BUCKET,
  presignExpirySeconds: 300,
  uploadSessionTtlSeconds: 86_400,
};

const { ddb, s3 } = useAwsMocks();

const logged: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
const logger: Logger = {
  info: (message, fields) => logged.push({ level: 'info', message, fields }),
  warn: (message, fields) => logged.push({ level: 'warn', message, fields }),
  error: (message, fields) => logged.push({ level: 'error', message, fields }),
};
const registry = createRegistry(createServices(config, createAwsClients(config)), logger);

const MiB = 1024 * 1024;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const sha256 = (bytes: Uint8Array | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const CONFIG = sha256('config');
const LAYER = sha256('layer');
const UPLOAD_ID = '0f0e0d0c-0b0a-4909-8807-060504030201';

function manifestBytes(): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: CONFIG, size: 10 },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: LAYER, size: 20 }],
    }),
  );
}

async function send(
  method: string,
  target: string,
  options: { headers?: Record<string, string>; body?: RegistryRequest['body'] } = {},
): Promise<RegistryResponse> {
  const url = new URL(target, 'http://registry.local');
  const response = await registry({
    method,
    path: url.pathname,
    query: url.searchParams,
    headers: options.headers ?? {},
    body: options.body,
  });
  // Whatever happened, every response names the API version.
  expect(response.headers['Docker-Distribution-API-Version']).toBe('registry/2.0');
  return response;
}

function bodyText(response: RegistryResponse): string {
  if (response.body === undefined) return '';
  return typeof response.body === 'string' ? response.body : Buffer.from(response.body).toString('utf8');
}

/** The OCI error body, checked for shape; answers its single entry. */
function ociError(response: RegistryResponse): { code: string; message: string; detail?: unknown } {
  expect(response.headers['Content-Type']).toBe('application/json');
  const text = bodyText(response);
  expect(response.headers['Content-Length']).toBe(String(Buffer.byteLength(text)));
  const document = JSON.parse(text) as { errors: { code: string; message: string; detail?: unknown }[] };
  expect(Array.isArray(document.errors)).toBe(true);
  expect(document.errors).toHaveLength(1);
  expect(typeof document.errors[0]!.code).toBe('string');
  expect(typeof document.errors[0]!.message).toBe('string');
  return document.errors[0]!;
}

function awsCalls() {
  return [...ddb.calls(), ...s3.calls()];
}

beforeEach(() => {
  ddb.reset();
  s3.reset();
  logged.length = 0;
});

describe('AWS errors', () => {
  it.each([
    ['ThrottlingException', () => new ThrottlingException({ message: 'Rate of requests exceeds the allowed throughput.', $metadata: {} })],
    [
      'ProvisionedThroughputExceededException',
      () =>
        new ProvisionedThroughputExceededException({
          message: 'The level of configured provisioned throughput for the table was exceeded.',
          $metadata: {},
        }),
    ],
  ])('DynamoDB %s on a manifest GET answers 429 TOOMANYREQUESTS with Retry-After', async (_name, makeError) => {
    ddb.on(GetCommand).rejects(makeError());
    const response = await send('GET', '/v2/team/app/manifests/latest');
    expect(response.status).toBe(429);
    expect(Number(response.headers['Retry-After'])).toBeGreaterThan(0);
    expect(ociError(response).code).toBe('TOOMANYREQUESTS');
    expect(ddb.commandCalls(GetCommand).length).toBeGreaterThan(0);
  });

  it('DynamoDB throttling on a manifest GET by digest answers 429 as well', async () => {
    ddb.on(GetCommand).rejects(new ThrottlingException({ message: 'slow down', $metadata: {} }));
    const response = await send('GET', `/v2/team/app/manifests/${CONFIG}`);
    expect(response.status).toBe(429);
    expect(ociError(response).code).toBe('TOOMANYREQUESTS');
  });

  it('S3 SlowDown during a blob upload answers 429 and records no blob', async () => {
    const blob = new TextEncoder().encode('hello blob');
    s3.on(PutObjectCommand).rejects(
      new S3ServiceException({ name: 'SlowDown', $fault: 'server', message: 'Please reduce your request rate.', $metadata: { httpStatusCode: 503 } }),
    );
    const response = await send('POST', `/v2/team/app/blobs/uploads/?digest=${sha256(blob)}`, {
      headers: { 'content-length': String(blob.byteLength), 'content-type': 'application/octet-stream' },
      body: [blob],
    });
    expect(response.status).toBe(429);
    expect(response.headers['Retry-After']).toBeDefined();
    expect(ociError(response).code).toBe('TOOMANYREQUESTS');
    expect(s3.commandCalls(PutObjectCommand).length).toBeGreaterThan(0);
    expect(ddb.commandCalls(PutCommand)).toHaveLength(0);
  });

  it.each([
    [
      'throttled inside the transaction',
      () => new TransactionCanceledException({ message: 'cancelled', $metadata: {}, CancellationReasons: [{ Code: 'ThrottlingError' }] }),
    ],
    [
      'conflicting with other transactions past every retry',
      () => new TransactionCanceledException({ message: 'cancelled', $metadata: {}, CancellationReasons: [{ Code: 'TransactionConflict' }] }),
    ],
  ])('a manifest PUT whose transaction is %s answers 429 with Retry-After, not 500', async (_name, makeError) => {
    ddb.on(BatchGetCommand).resolves(pushReads(TABLE, 'team/app', CONFIG, LAYER));
    ddb.on(GetCommand).resolves({});
    ddb.on(TransactWriteCommand).rejects(makeError());
    const response = await send('PUT', '/v2/team/app/manifests/v1', { headers: { 'content-type': OCI_MANIFEST }, body: [manifestBytes()] });
    expect(response.status).toBe(429);
    expect(response.headers['Retry-After']).toBe('1');
    expect(ociError(response).code).toBe('TOOMANYREQUESTS');
  });

  it('S3 throttling while reading a large manifest answers 429', async () => {
    const digest = sha256('large manifest');
    ddb.on(GetCommand).resolves({ Item: { digest, mediaType: OCI_MANIFEST, size: 300_000, objectKey: 'manifests/x' } });
    s3.on(GetObjectCommand).rejects(
      new S3ServiceException({ name: 'SlowDown', $fault: 'server', message: 'Please reduce your request rate.', $metadata: { httpStatusCode: 503 } }),
    );
    const response = await send('GET', `/v2/team/app/manifests/${digest}`);
    expect(response.status).toBe(429);
    expect(ociError(response).code).toBe('TOOMANYREQUESTS');
  });

  it('an unexpected DynamoDB fault answers 500 UNKNOWN without leaking the AWS message', async () => {
    const secret = 'Internal failure on arn:aws:dynamodb:us-east-1:123456789012:table/registry-table';
    ddb.on(GetCommand).rejects(new InternalServerError({ message: secret, $metadata: {} }));
    const response = await send('GET', '/v2/team/app/manifests/latest');
    expect(response.status).toBe(500);
    const text = bodyText(response);
    expect(JSON.parse(text)).toEqual({ errors: [{ code: 'UNKNOWN', message: expect.any(String) }] });
    expect(response.headers['Content-Type']).toBe('application/json');
    expect(response.headers['Content-Length']).toBe(String(Buffer.byteLength(text)));
    expect(text).not.toContain(secret);
    expect(text).not.toContain('arn:aws');
    expect(text).not.toContain('InternalServerError');
    expect(response.headers['Retry-After']).toBeUndefined();
    // The operator still gets the detail.
    expect(logged.some((entry) => entry.level === 'error' && JSON.stringify(entry.fields).includes(secret))).toBe(true);
  });

  it('a programming error (a TypeError) is a 500 UNKNOWN too, not a crash', async () => {
    ddb.on(GetCommand).callsFake(() => {
      throw new TypeError('Cannot read properties of undefined');
    });
    const response = await send('GET', '/v2/team/app/tags/list');
    expect(response.status).toBe(500);
    expect(ociError(response).code).toBe('UNKNOWN');
    expect(bodyText(response)).not.toContain('Cannot read properties');
  });
});

/** A stored upload session that has received `received`, its bytes kept as a tail object. */
async function sessionItem(received: Uint8Array, tailKey: string, version: number) {
  const digest = await ResumableDigest.start();
  digest.update(received);
  return {
    PK: `UPLOAD#${UPLOAD_ID}`,
    SK: 'UPLOAD',
    id: UPLOAD_ID,
    repository: 'team/app',
    offset: received.byteLength,
    hashState: digest.save(),
    partCount: 0,
    tailKey,
    tailSize: received.byteLength,
    version,
    createdAt: Date.now() - 1000,
    expiresAt: Math.floor(Date.now() / 1000) + 3600,
  };
}

/** A GetObject body as the SDK gives it: read whole, or streamed. */
function objectBody(bytes: Uint8Array) {
  return {
    transformToByteArray: async () => Uint8Array.from(bytes),
    async *[Symbol.asyncIterator]() {
      yield Uint8Array.from(bytes);
    },
  };
}

describe('upload sessions', () => {
  it('a PATCH that loses the race for the session answers 416 with the Range before it, and writes nothing', async () => {
    const earlier = new TextEncoder().encode('12345');
    ddb
      .on(GetCommand, { Key: { PK: `UPLOAD#${UPLOAD_ID}`, SK: 'UPLOAD' } })
      .resolves({ Item: await sessionItem(earlier, `uploads/${UPLOAD_ID}/tail-old`, 3) } as never);
    ddb.on(PutCommand).rejects(new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }));
    s3.on(GetObjectCommand).resolves({ Body: objectBody(earlier) } as never);

    const chunk = new TextEncoder().encode('6789abcdef');
    const response = await send('PATCH', `/v2/team/app/blobs/uploads/${UPLOAD_ID}`, {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(chunk.byteLength) },
      body: [chunk],
    });
    expect(response.status).toBe(416);
    expect(response.headers.Range).toBe('0-4');
    expect(ociError(response).code).toBe('BLOB_UPLOAD_INVALID');

    // A short chunk takes no lease: it writes only a tail of its own, and its one save is
    // conditional on the version read. The save lost, so the new tail is deleted again and no
    // object of the winner's upload (its tail, its parts) was touched.
    const saves = ddb.commandCalls(PutCommand).map((call) => call.args[0].input);
    expect(saves).toHaveLength(1);
    expect(saves[0]!.ExpressionAttributeValues).toEqual({ ':previous': 3 });
    expect(saves[0]!.Item).toMatchObject({ version: 4, offset: 15 });
    const written = s3.commandCalls(PutObjectCommand).map((call) => call.args[0].input.Key);
    expect(written).toHaveLength(1);
    expect(written[0]).not.toBe(`uploads/${UPLOAD_ID}/tail-old`);
    expect(s3.commandCalls(DeleteObjectCommand).map((call) => call.args[0].input.Key)).toEqual(written);
    expect(s3.commandCalls(UploadPartCommand)).toHaveLength(0);
  });

  it('a PATCH while another request holds the session answers 416 without touching storage', async () => {
    const item = {
      ...(await sessionItem(new TextEncoder().encode('12345'), `uploads/${UPLOAD_ID}/tail-old`, 3)),
      leaseHolder: 'other',
      leaseUntil: Date.now() + 60_000,
    };
    ddb.on(GetCommand, { Key: { PK: `UPLOAD#${UPLOAD_ID}`, SK: 'UPLOAD' } }).resolves({ Item: item } as never);
    const response = await send('PATCH', `/v2/team/app/blobs/uploads/${UPLOAD_ID}`, { body: [new Uint8Array([1])] });
    expect(response.status).toBe(416);
    expect(ddb.commandCalls(PutCommand)).toHaveLength(0);
    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(0);
  });

  it('a PATCH to an unknown upload answers 404 BLOB_UPLOAD_UNKNOWN', async () => {
    ddb.on(GetCommand).resolves({});
    const response = await send('PATCH', `/v2/team/app/blobs/uploads/${UPLOAD_ID}`, { body: [new Uint8Array([1])] });
    expect(response.status).toBe(404);
    expect(ociError(response).code).toBe('BLOB_UPLOAD_UNKNOWN');
  });
});

describe('retrying the final PUT of an upload after a 429', () => {
  /**
   * Stateful stand-ins for the two stores, so that a second request sees what the first left:
   * S3 objects by key, and one upload session item that only a successful save changes.
   */
  async function world(received: Uint8Array) {
    const objects = new Map<string, Uint8Array>();
    const oldTail = `uploads/${UPLOAD_ID}/tail-first`;
    objects.set(oldTail, received);
    const session = await sessionItem(received, oldTail, 2);
    let storedSession: Record<string, unknown> | undefined = session;
    s3.on(PutObjectCommand).callsFake(async (input: { Key: string; Body: Uint8Array }) => {
      objects.set(input.Key, Uint8Array.from(input.Body));
      return {};
    });
    s3.on(GetObjectCommand).callsFake(async (input: { Key: string }) => {
      const bytes = objects.get(input.Key);
      if (!bytes) throw new NoSuchKey({ message: 'The specified key does not exist.', $metadata: { httpStatusCode: 404 } });
      return { Body: objectBody(bytes) };
    });
    s3.on(DeleteObjectCommand).callsFake(async (input: { Key: string }) => {
      objects.delete(input.Key);
      return {};
    });
    s3.on(CopyObjectCommand).callsFake(async (input: { Key: string; CopySource: string }) => {
      const bytes = objects.get(decodeURIComponent(input.CopySource.slice(input.CopySource.indexOf('/') + 1)));
      if (!bytes) throw new NoSuchKey({ message: 'The specified key does not exist.', $metadata: { httpStatusCode: 404 } });
      objects.set(input.Key, bytes);
      return {};
    });
    s3.on(HeadObjectCommand).callsFake(async (input: { Key: string }) => {
      const bytes = objects.get(input.Key);
      if (!bytes) throw new NotFound({ message: 'Not Found', $metadata: { httpStatusCode: 404 } });
      return { ContentLength: bytes.byteLength };
    });
    ddb.on(GetCommand, { Key: { PK: `UPLOAD#${UPLOAD_ID}`, SK: 'UPLOAD' } }).callsFake(async () => ({ Item: storedSession }));
    ddb.on(DeleteCommand, { Key: { PK: `UPLOAD#${UPLOAD_ID}`, SK: 'UPLOAD' } }).callsFake(async () => {
      storedSession = undefined;
      return {};
    });
    return { objects, oldTail };
  }

  const throttled = () => new ThrottlingException({ message: 'Rate exceeded', $metadata: {} });

  /** The blob record written by the finish's transaction that succeeded. */
  function recordedBlob(): Record<string, unknown> | undefined {
    return ddb
      .commandCalls(TransactWriteCommand)
      .flatMap((call) => call.args[0].input.TransactItems!.flatMap((item) => (item.Put ? [item.Put.Item!] : [])))
      .findLast((item) => item.SK === 'BLOB');
  }

  /** The finish's one transaction (record, link, end the session) is throttled once, then goes through. */
  function throttleFirstTransaction(): void {
    let transactions = 0;
    ddb.on(TransactWriteCommand).callsFake(async () => {
      if (++transactions === 1) throw throttled();
      return {};
    });
  }

  it('with the last bytes in the PUT body, a throttled finish answers 429 and the identical retry succeeds', async () => {
    const first = new TextEncoder().encode('12345');
    const last = new TextEncoder().encode('67890');
    const blobDigest = sha256('1234567890');
    const { objects, oldTail } = await world(first);
    throttleFirstTransaction();

    const put = () =>
      send('PUT', `/v2/team/app/blobs/uploads/${UPLOAD_ID}?digest=${blobDigest}`, {
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(last.byteLength) },
        body: [last],
      });
    const throttledResponse = await put();
    expect(throttledResponse.status).toBe(429);
    expect(ociError(throttledResponse).code).toBe('TOOMANYREQUESTS');
    // The session was not ended, so it still names its tail: that object must still be there.
    const tailSurvived = objects.has(oldTail);

    const retry = await put();
    expect(retry.status).toBe(201);
    expect(retry.headers['Docker-Content-Digest']).toBe(blobDigest);
    expect(tailSurvived).toBe(true);
    expect(Buffer.from(objects.get(recordedBlob()!.objectKey as string) ?? []).toString()).toBe('1234567890');
  });

  it('with an empty PUT body, a throttled finish answers 429 and the identical retry succeeds', async () => {
    const bytes = new TextEncoder().encode('whole blob sent by PATCH');
    const blobDigest = sha256(bytes);
    const { objects } = await world(bytes);
    throttleFirstTransaction();

    const put = () => send('PUT', `/v2/team/app/blobs/uploads/${UPLOAD_ID}?digest=${blobDigest}`, { headers: { 'content-length': '0' } });
    const throttledResponse = await put();
    expect(throttledResponse.status).toBe(429);

    const retry = await put();
    expect(retry.status).toBe(201);
    expect(retry.headers['Docker-Content-Digest']).toBe(blobDigest);
    expect(Buffer.from(objects.get(recordedBlob()!.objectKey as string) ?? []).equals(Buffer.from(bytes))).toBe(true);
  });
});

describe('routing', () => {
  it.each(['/v2/team/app/unknown', '/v3/', '/', '/v2/team/app/manifests/', '/v2/team/app/blobs'])(
    'an unknown path %s answers 404 with an OCI error body',
    async (path) => {
      const response = await send('GET', path);
      expect(response.status).toBe(404);
      ociError(response);
      expect(awsCalls()).toHaveLength(0);
    },
  );

  it.each([
    ['POST', '/v2/team/app/manifests/latest', ['GET', 'HEAD', 'PUT', 'DELETE']],
    ['PATCH', '/v2/team/app/tags/list', ['GET']],
    ['DELETE', '/v2/', ['GET', 'HEAD']],
    ['PUT', '/v2/team/app/blobs/uploads/', ['POST']],
    ['POST', `/v2/team/app/blobs/${CONFIG}`, ['GET', 'HEAD', 'DELETE']],
  ])('%s %s answers 405 UNSUPPORTED with Allow', async (method, path, allowed) => {
    const response = await send(method, path);
    expect(response.status).toBe(405);
    expect(ociError(response).code).toBe('UNSUPPORTED');
    const allow = (response.headers.Allow ?? '').split(',').map((m) => m.trim());
    expect(allow.sort()).toEqual([...allowed].sort());
    expect(awsCalls()).toHaveLength(0);
  });

  it.each(['/v2/Bad/tags/list', '/v2/team//app/tags/list', '/v2/-team/manifests/latest', `/v2/team_/blobs/${CONFIG}`])(
    'an invalid name in %s answers 400 NAME_INVALID before touching storage',
    async (path) => {
      const response = await send('GET', path);
      expect(response.status).toBe(400);
      expect(ociError(response).code).toBe('NAME_INVALID');
      expect(awsCalls()).toHaveLength(0);
    },
  );

  it.each([
    ['GET', '/v2/a/blobs/sha256:xyz'],
    ['HEAD', `/v2/a/blobs/sha256:${'A'.repeat(64)}`],
    ['DELETE', '/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e'],
    ['GET', '/v2/a/referrers/sha256:abc'],
    ['PUT', '/v2/a/manifests/sha256:xyz'],
  ])('%s %s answers 400 DIGEST_INVALID', async (method, path) => {
    const response = await send(method, path);
    expect(response.status).toBe(400);
    expect(ociError(response).code).toBe('DIGEST_INVALID');
    expect(awsCalls()).toHaveLength(0);
  });

  it.each([
    ['GET', '/v2/a/manifests/sha256:xyz'],
    ['HEAD', '/v2/a/manifests/.INVALID_MANIFEST_NAME'],
    ['GET', `/v2/a/manifests/${'t'.repeat(129)}`],
    ['DELETE', '/v2/a/manifests/-v1'],
  ])('%s %s names no manifest that can exist: 404 MANIFEST_UNKNOWN before any lookup', async (method, path) => {
    const response = await send(method, path);
    expect(response.status).toBe(404);
    if (method !== 'HEAD') expect(ociError(response).code).toBe('MANIFEST_UNKNOWN');
    expect(awsCalls()).toHaveLength(0);
  });

  it('PUT to a tag that breaks the grammar answers 400 MANIFEST_INVALID naming the grammar', async () => {
    const response = await send('PUT', '/v2/a/manifests/.INVALID_MANIFEST_NAME', {
      headers: { 'content-type': OCI_MANIFEST },
      body: [manifestBytes()],
    });
    expect(response.status).toBe(400);
    expect(ociError(response)).toMatchObject({ code: 'MANIFEST_INVALID', message: expect.stringContaining('[a-zA-Z0-9_]') });
    expect(awsCalls()).toHaveLength(0);
  });

  it('GET /v2/ answers 200 with the API version header', async () => {
    const response = await send('GET', '/v2/');
    expect(response.status).toBe(200);
  });
});

describe('manifests', () => {
  it('a delete by digest that pushes keep racing gives up after a few tries with 429 and Retry-After', async () => {
    const digest = sha256('raced manifest');
    ddb.on(GetCommand).resolves({ Item: { digest, mediaType: OCI_MANIFEST, size: 10, pushedAt: 1 } });
    ddb.on(QueryCommand).resolves({ Items: [] });
    ddb.on(TransactWriteCommand).rejects(
      new TransactionCanceledException({
        message: 'Transaction cancelled',
        $metadata: {},
        CancellationReasons: [{ Code: 'ConditionalCheckFailed' }],
      }),
    );
    const response = await send('DELETE', `/v2/team/app/manifests/${digest}`);
    expect(response.status).toBe(429);
    expect(response.headers['Retry-After']).toBe('1');
    expect(ociError(response).code).toBe('TOOMANYREQUESTS');
    expect(ddb.commandCalls(TransactWriteCommand)).toHaveLength(5);
  });

  it('a PUT with Content-Length over 4 MiB answers 413 without reading the body', async () => {
    let chunksRead = 0;
    const body = {
      async *[Symbol.asyncIterator]() {
        chunksRead++;
        yield new Uint8Array(MiB);
        throw new Error('the registry read past the first chunk of an oversized manifest');
      },
    };
    const response = await send('PUT', '/v2/team/app/manifests/latest', {
      headers: { 'content-type': OCI_MANIFEST, 'content-length': String(5 * MiB) },
      body,
    });
    expect(response.status).toBe(413);
    ociError(response);
    expect(chunksRead).toBeLessThanOrEqual(1);
    expect(awsCalls()).toHaveLength(0);
  });

  it('a PUT without Content-Length stops reading as soon as the body passes 4 MiB', async () => {
    let chunksRead = 0;
    const body = {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          chunksRead++;
          if (chunksRead > 5) throw new Error('the registry kept reading an oversized manifest');
          yield new Uint8Array(MiB);
        }
      },
    };
    const response = await send('PUT', '/v2/team/app/manifests/latest', { headers: { 'content-type': OCI_MANIFEST }, body });
    expect(response.status).toBe(413);
    ociError(response);
    expect(chunksRead).toBe(5);
    expect(awsCalls()).toHaveLength(0);
  });

  it('a manifest of exactly 4 MiB is accepted and stored byte for byte (in S3, being too large to inline)', async () => {
    ddb.on(BatchGetCommand).resolves(pushReads(TABLE, 'team/app', CONFIG, LAYER));
    ddb.on(TransactWriteCommand).resolves({});
    ddb.on(GetCommand).resolves({}); // the GC epoch: no run yet
    s3.on(PutObjectCommand).resolves({});
    const compact = manifestBytes();
    // JSON allows trailing whitespace: pad to exactly the limit.
    const bytes = new Uint8Array(4 * MiB).fill(0x20);
    bytes.set(compact);
    const digest = sha256(bytes);
    const response = await send('PUT', '/v2/team/app/manifests/big', {
      headers: { 'content-type': OCI_MANIFEST, 'content-length': String(bytes.byteLength) },
      body: [bytes.subarray(0, MiB), bytes.subarray(MiB)],
    });
    expect(response.status).toBe(201);
    expect(response.headers['Docker-Content-Digest']).toBe(digest);
    const put = s3.commandCalls(PutObjectCommand)[0]!.args[0].input;
    expect(put.Bucket).toBe(BUCKET);
    expect(Buffer.from(put.Body as Uint8Array).equals(Buffer.from(bytes))).toBe(true);
    const items = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!.flatMap((item) => (item.Put ? [item.Put.Item!] : []));
    expect(items.find((item) => item.SK === `MANIFEST#${digest}`)).toMatchObject({ objectKey: put.Key, size: 4 * MiB });
  });

  it('a manifest one byte over 4 MiB answers 413 even when sent without Content-Length', async () => {
    const bytes = new Uint8Array(4 * MiB + 1).fill(0x20);
    bytes.set(manifestBytes());
    const response = await send('PUT', '/v2/team/app/manifests/big', { headers: { 'content-type': OCI_MANIFEST }, body: [bytes] });
    expect(response.status).toBe(413);
    ociError(response);
    expect(awsCalls()).toHaveLength(0);
  });

  it('a PUT of a manifest whose layer the repository does not hold answers 400 MANIFEST_BLOB_UNKNOWN and stores nothing', async () => {
    ddb.on(BatchGetCommand).resolves(pushReads(TABLE, 'team/app', CONFIG));
    const bytes = manifestBytes();
    const response = await send('PUT', '/v2/team/app/manifests/v1', {
      headers: { 'content-type': OCI_MANIFEST, 'content-length': String(bytes.byteLength) },
      body: [bytes],
    });
    expect(response.status).toBe(400);
    const error = ociError(response);
    expect(error.code).toBe('MANIFEST_BLOB_UNKNOWN');
    expect(error.detail).toEqual({ digest: LAYER });
    expect(ddb.commandCalls(TransactWriteCommand)).toHaveLength(0);
    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(0);
  });

  it('a PUT where BatchGet returns nothing at all answers MANIFEST_BLOB_UNKNOWN for the config', async () => {
    ddb.on(BatchGetCommand).resolves({ Responses: { [TABLE]: [] } });
    const bytes = manifestBytes();
    const response = await send('PUT', '/v2/team/app/manifests/v1', { headers: { 'content-type': OCI_MANIFEST }, body: [bytes] });
    expect(response.status).toBe(400);
    expect(ociError(response)).toMatchObject({ code: 'MANIFEST_BLOB_UNKNOWN', detail: { digest: CONFIG } });
  });

  it('a PUT by digest that does not match the body answers 400 DIGEST_INVALID and stores nothing', async () => {
    const bytes = manifestBytes();
    const wrong = sha256('something else');
    const response = await send('PUT', `/v2/team/app/manifests/${wrong}`, { headers: { 'content-type': OCI_MANIFEST }, body: [bytes] });
    expect(response.status).toBe(400);
    expect(ociError(response).code).toBe('DIGEST_INVALID');
    expect(ddb.commandCalls(TransactWriteCommand)).toHaveLength(0);
  });

  it('a valid PUT by tag stores the exact bytes and answers 201 with the digest', async () => {
    ddb.on(BatchGetCommand).resolves(pushReads(TABLE, 'team/app', CONFIG, LAYER));
    ddb.on(TransactWriteCommand).resolves({});
    ddb.on(GetCommand).resolves({}); // the GC epoch: no run yet
    const bytes = new TextEncoder().encode(JSON.stringify(JSON.parse(new TextDecoder().decode(manifestBytes())), null, 3));
    const digest = sha256(bytes);
    const response = await send('PUT', '/v2/team/app/manifests/v1', { headers: { 'content-type': OCI_MANIFEST }, body: [bytes] });
    expect(response.status).toBe(201);
    expect(response.headers['Docker-Content-Digest']).toBe(digest);
    expect(response.headers.Location).toBe(`/v2/team/app/manifests/${digest}`);
    const items = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!.flatMap((item) => (item.Put ? [item.Put.Item!] : []));
    const stored = items.find((item) => item.SK === `MANIFEST#${digest}`)!;
    expect(Buffer.from(stored.body as Uint8Array).equals(Buffer.from(bytes))).toBe(true);
    expect(items.find((item) => item.SK === 'TAG#v1')).toMatchObject({ digest });
  });

  it('a GET answers the stored bytes with their media type and digest', async () => {
    const bytes = manifestBytes();
    const digest = sha256(bytes);
    ddb.on(GetCommand, { Key: { PK: 'REPO#team/app', SK: 'TAG#v1' } }).resolves({ Item: { digest } });
    ddb
      .on(GetCommand, { Key: { PK: 'REPO#team/app', SK: `MANIFEST#${digest}` } })
      .resolves({ Item: { digest, mediaType: OCI_MANIFEST, size: bytes.byteLength, body: bytes } });
    const response = await send('GET', '/v2/team/app/manifests/v1');
    expect(response.status).toBe(200);
    expect(response.headers['Content-Type']).toBe(OCI_MANIFEST);
    expect(response.headers['Docker-Content-Digest']).toBe(digest);
    expect(response.headers['Content-Length']).toBe(String(bytes.byteLength));
    expect(Buffer.from(response.body as Uint8Array).equals(Buffer.from(bytes))).toBe(true);
  });

  it('a GET of an unknown tag answers 404 MANIFEST_UNKNOWN', async () => {
    ddb.on(GetCommand).resolves({});
    const response = await send('GET', '/v2/team/app/manifests/nope');
    expect(response.status).toBe(404);
    expect(ociError(response).code).toBe('MANIFEST_UNKNOWN');
  });

  it('a PUT of an index whose child is not in the repository answers 400 MANIFEST_UNKNOWN', async () => {
    ddb.on(BatchGetCommand).resolves({ Responses: { [TABLE]: [] } });
    const child = sha256('child');
    const bytes = new TextEncoder().encode(
      JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: child, size: 1 }] }),
    );
    const response = await send('PUT', '/v2/team/app/manifests/multi', { headers: { 'content-type': OCI_INDEX }, body: [bytes] });
    expect(response.status).toBe(400);
    expect(ociError(response)).toMatchObject({ code: 'MANIFEST_UNKNOWN', detail: { digest: child } });
    expect(ddb.commandCalls(TransactWriteCommand)).toHaveLength(0);
  });
});

describe('tags/list', () => {
  it('an unknown repository answers 404 NAME_UNKNOWN: asked only because its page of tags was empty', async () => {
    ddb.on(GetCommand).resolves({});
    ddb.on(QueryCommand).resolves({ Items: [] });
    const response = await send('GET', '/v2/team/nothing/tags/list');
    expect(response.status).toBe(404);
    expect(ociError(response).code).toBe('NAME_UNKNOWN');
    expect(ddb.commandCalls(GetCommand)).toHaveLength(1);
  });

  it('a repository with tags is listed with one Query and no other read', async () => {
    ddb.on(QueryCommand).resolves({ Items: [{ SK: 'TAG#v1', tag: 'v1' }] });
    const response = await send('GET', '/v2/team/app/tags/list');
    expect(JSON.parse(bodyText(response))).toEqual({ name: 'team/app', tags: ['v1'] });
    expect(ddb.commandCalls(QueryCommand)).toHaveLength(1);
    expect(ddb.commandCalls(GetCommand)).toHaveLength(0);
  });

  it('a manifest HEAD by digest never fetches a large manifest from S3', async () => {
    const digest = sha256('large');
    ddb.on(GetCommand).resolves({ Item: { mediaType: OCI_MANIFEST, size: 300_000 } });
    const response = await send('HEAD', `/v2/team/app/manifests/${digest}`);
    expect(response.headers).toMatchObject({ 'Docker-Content-Digest': digest, 'Content-Length': '300000' });
    expect(s3.commandCalls(GetObjectCommand)).toHaveLength(0);
  });

  it('a manifest HEAD by tag is one read of the tag, which carries digest, media type and size', async () => {
    const digest = sha256('tagged');
    ddb.on(GetCommand).resolves({ Item: { digest, mediaType: OCI_MANIFEST, size: 123 } });
    const response = await send('HEAD', '/v2/team/app/manifests/v1');
    expect(response.headers).toMatchObject({ 'Docker-Content-Digest': digest, 'Content-Length': '123', 'Content-Type': OCI_MANIFEST });
    expect(ddb.commandCalls(GetCommand)).toHaveLength(1);
  });

  it.each(['-1', 'abc', '1.5'])('n=%s answers 400 with an OCI error body', async (n) => {
    ddb.on(GetCommand).resolves({ Item: { PK: 'CATALOG', SK: 'team/app', name: 'team/app' } });
    const response = await send('GET', `/v2/team/app/tags/list?n=${n}`);
    expect(response.status).toBe(400);
    ociError(response);
    expect(ddb.commandCalls(QueryCommand)).toHaveLength(0);
  });

  it('a known repository lists its tags with a Link to the next page', async () => {
    ddb.on(GetCommand).resolves({ Item: { PK: 'CATALOG', SK: 'team/app', name: 'team/app' } });
    ddb.on(QueryCommand).resolves({
      Items: [
        { SK: 'TAG#a', tag: 'a' },
        { SK: 'TAG#b', tag: 'b' },
        { SK: 'TAG#c', tag: 'c' },
      ],
    });
    const response = await send('GET', '/v2/team/app/tags/list?n=2');
    expect(response.status).toBe(200);
    expect(JSON.parse(bodyText(response))).toEqual({ name: 'team/app', tags: ['a', 'b'] });
    expect(response.headers.Link).toBe('</v2/team/app/tags/list?n=2&last=b>; rel="next"');
  });
});

describe('blobs', () => {
  it('a blob HEAD of an unlinked blob answers 404 BLOB_UNKNOWN with no writes', async () => {
    ddb.on(GetCommand).resolves({});
    const response = await send('HEAD', `/v2/team/app/blobs/${CONFIG}`);
    expect(response.status).toBe(404);
    expect(ociError(response).code).toBe('BLOB_UNKNOWN');
    expect(ddb.commandCalls(PutCommand)).toHaveLength(0);
    expect(ddb.commandCalls(DeleteCommand)).toHaveLength(0);
  });
});
