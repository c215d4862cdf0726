import { createHash, randomBytes } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Event } from 'aws-lambda';
import { beforeAll, describe, expect, it } from 'vitest';
import { objectKeys } from '../../registry/storage/keys.js';
import { LOCAL_CREDENTIALS } from '../../scripts/local/local-credentials.js';
import { imageManifest, sha256 } from '../support/registry-http.js';
import { useLocalStack } from './local-stack.js';

/**
 * The registry's side of the front door (docs/front-door.md): objects the front door's function
 * put under `direct/` with S3's SHA-256 check become blobs of their session's repository, by the
 * S3 event or earlier by any request that needs them. The test puts the object as CloudFront
 * would (with ChecksumSHA256 and the function's metadata), on the local S3 stand-in.
 */
const TICKET_SECRET = randomBytes(32).toString('base64url');
const stack = useLocalStack('front-door-recording', {
  overrides: { frontDoor: { url: 'https://registry.example.com', ticketSeconds: 3600, ticketSecret: TICKET_SECRET } },
});

let recorder: (event: S3Event) => Promise<void>;

beforeAll(async () => {
  const config = stack.registry.config;
  Object.assign(process.env, {
    TABLE_NAME: config.tableName,
    BUCKET_NAME: config.bucketName,
    AWS_REGION: config.region,
    DYNAMODB_ENDPOINT: config.dynamoEndpoint,
    S3_ENDPOINT: config.s3Endpoint,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    REGISTRY_FRONT_DOOR: 'true',
    PUBLIC_BASE_URL: 'https://registry.example.com',
  });
  ({ handler: recorder } = await import('../../functions/direct-upload-recorder.js'));
});

/** Opens a session the way a client does, and answers its id and the Location the registry gave. */
async function openSession(name: string): Promise<{ session: string; location: string }> {
  const location = await stack.http.openUpload(name);
  const session = /\/blobs\/uploads\/([^/?]+)/.exec(location)![1]!;
  return { session, location };
}

/** What the front door's function makes of a monolithic PUT: the body at the session's key, checked by S3. */
async function putDirect(name: string, session: string, body: Buffer, options: { digest?: string; checksumOf?: Buffer } = {}): Promise<string> {
  const digest = options.digest ?? sha256(body);
  const key = objectKeys.directUpload(digest, session);
  await stack.clients.s3.send(
    new PutObjectCommand({
      Bucket: stack.registry.config.bucketName,
      Key: key,
      Body: body,
      ContentLength: body.length,
      ChecksumSHA256: createHash('sha256')
        .update(options.checksumOf ?? body)
        .digest('base64'),
      Metadata: { 'registry-repository': name, 'registry-session': session },
    }),
  );
  return key;
}

function s3Event(key: string): S3Event {
  return {
    Records: [{ s3: { bucket: { name: stack.registry.config.bucketName }, object: { key: encodeURIComponent(key).replace(/%2F/g, '/') } } }],
  } as unknown as S3Event;
}

async function headStatus(name: string, digest: string): Promise<number> {
  return (await stack.http.fetch(`/v2/${name}/blobs/${digest}`, { method: 'HEAD' })).status;
}

describe('blobs the front door put straight into the bucket', () => {
  it('answers upload Locations on the same host with a ticket for the session', async () => {
    const { session, location } = await openSession('fd/location');
    expect(location).toMatch(new RegExp(`^/v2/fd/location/blobs/uploads/${session}\\?ticket=v1\\.`));
  });

  it('are recorded by the S3 event, and recording twice is harmless', async () => {
    const name = 'fd/event';
    const body = randomBytes(2048);
    const { session } = await openSession(name);
    const key = await putDirect(name, session, body);
    await recorder(s3Event(key));
    await recorder(s3Event(key));
    const head = await stack.http.fetch(`/v2/${name}/blobs/${sha256(body)}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(body.length));
    const get = await stack.http.fetch(`/v2/${name}/blobs/${sha256(body)}`, { redirect: 'follow' });
    expect(Buffer.from(await get.arrayBuffer()).equals(body)).toBe(true);
  });

  it('are recorded by a blob HEAD before any event', async () => {
    const name = 'fd/head';
    const body = randomBytes(1000);
    const { session } = await openSession(name);
    const key = await putDirect(name, session, body);
    expect(await headStatus(name, sha256(body))).toBe(200);
    // The event that arrives afterwards changes nothing.
    await recorder(s3Event(key));
    expect(await headStatus(name, sha256(body))).toBe(200);
  });

  it('are recorded by the S3 event before any request', async () => {
    const name = 'fd/event-first';
    const body = randomBytes(1024);
    const { session } = await openSession(name);
    await recorder(s3Event(await putDirect(name, session, body)));
    const head = await stack.http.fetch(`/v2/${name}/blobs/${sha256(body)}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('docker-content-digest')).toBe(sha256(body));
  });

  it('are recorded by a manifest push that references them before any event', async () => {
    const name = 'fd/manifest';
    const config = await stack.http.pushBlob(name, '{"architecture":"amd64","os":"linux"}');
    const layer = randomBytes(4096);
    const { session } = await openSession(name);
    await putDirect(name, session, layer);
    const response = await stack.http.putManifest(name, 'v1', imageManifest(config, sha256(layer)));
    expect(response.status).toBe(201);
    expect(await headStatus(name, sha256(layer))).toBe(200);
  });

  it('are recorded by a mount from their repository', async () => {
    const body = randomBytes(512);
    const { session } = await openSession('fd/mount-source');
    await putDirect('fd/mount-source', session, body);
    const mount = await stack.http.fetch(`/v2/fd/mount-target/blobs/uploads/?mount=${sha256(body)}&from=fd/mount-source`, { method: 'POST' });
    expect(mount.status).toBe(201);
    expect(await headStatus('fd/mount-target', sha256(body))).toBe(200);
  });

  it('are not linked into another repository than their session', async () => {
    const body = randomBytes(256);
    const { session } = await openSession('fd/owner');
    // The object claims another repository than its session's: only the session counts.
    const key = await putDirect('fd/intruder', session, body);
    expect(await headStatus('fd/intruder', sha256(body))).toBe(404);
    const config = await stack.http.pushBlob('fd/intruder', '{"os":"linux"}');
    expect((await stack.http.putManifest('fd/intruder', 'v1', imageManifest(config, sha256(body)))).status).toBe(400);
    await recorder(s3Event(key));
    expect(await headStatus('fd/intruder', sha256(body))).toBe(404);
    expect(await headStatus('fd/owner', sha256(body))).toBe(404);
  });

  it('are not recorded when the checksum S3 verified is not the digest of the key', async () => {
    const name = 'fd/lying';
    const body = randomBytes(300);
    const claimed = sha256(randomBytes(300));
    const { session } = await openSession(name);
    // Defence in depth: an object under a digest it does not hash to (S3 checked it against its own checksum).
    const key = await putDirect(name, session, body, { digest: claimed });
    await recorder(s3Event(key));
    expect(await headStatus(name, claimed)).toBe(404);
    const config = await stack.http.pushBlob(name, '{"os":"linux"}');
    expect((await stack.http.putManifest(name, 'v1', imageManifest(config, claimed))).status).toBe(400);
  });

  it('are refused by the S3 stand-in when the body does not match the checksum, as S3 does', async () => {
    const name = 'fd/bad-digest';
    const body = randomBytes(300);
    const { session } = await openSession(name);
    await expect(putDirect(name, session, body, { checksumOf: randomBytes(300) })).rejects.toMatchObject({ name: 'BadDigest' });
    expect(await headStatus(name, sha256(body))).toBe(404);
  });
});
