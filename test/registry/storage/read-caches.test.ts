/**
 * What a warm instance remembers instead of asking again (docs/storage.md, "Consistency"): the
 * access policy for a few seconds, the replication of blob objects for good; and how a pull
 * reads a blob link: eventually consistent, strongly only on a miss.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { RegistryConfig } from '../../../registry/config/config.js';
import { ACCESS_POLICY_CACHE_MS, AccessStore } from '../../../registry/storage/access-store.js';
import { BlobIndex } from '../../../registry/storage/blob-index.js';
import { BlobObjectStore } from '../../../registry/storage/blob-object-store.js';
import { blobReadsFor } from '../../../registry/storage/blob-reads.js';

const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
const dynamo = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1', credentials }));
const ddb = mockClient(dynamo);
const GRANT = { PK: 'ACCESS', SK: 'GROUP#team#team/*', kind: 'group', group: 'team', pattern: 'team/*', actions: ['pull'] };

beforeEach(() => ddb.reset());

describe('the access policy', () => {
  it('is read eventually consistent, once per few seconds per instance, and again at once after a change here', async () => {
    let now = 1_000_000;
    const access = new AccessStore(dynamo, 'registry', () => now);
    ddb.on(QueryCommand).resolves({ Items: [GRANT] });
    const [first, second] = await Promise.all([access.readCached(), access.readCached()]);
    expect(first.groupGrants).toEqual([{ group: 'team', pattern: 'team/*', actions: ['pull'] }]);
    expect(second).toBe(first);
    now += ACCESS_POLICY_CACHE_MS - 1;
    await access.readCached();
    expect(ddb.commandCalls(QueryCommand)).toHaveLength(1);
    expect(ddb.commandCalls(QueryCommand)[0]!.args[0].input.ConsistentRead).toBe(false);

    now += 1;
    ddb.on(QueryCommand).resolves({ Items: [] });
    expect((await access.readCached()).groupGrants).toEqual([]);
    expect(ddb.commandCalls(QueryCommand)).toHaveLength(2);
    await access.revoke('team', 'team/*');
    await access.readCached();
    expect(ddb.commandCalls(QueryCommand)).toHaveLength(3);
    // What the admin CLI lists is read now, strongly consistent.
    await access.read();
    expect(ddb.commandCalls(QueryCommand).map((call) => call.args[0].input.ConsistentRead)).toEqual([false, false, false, true]);
  });

  it('does not keep a failed read', async () => {
    const access = new AccessStore(dynamo, 'registry');
    ddb
      .on(QueryCommand)
      .rejectsOnce(new Error('throttled'))
      .resolves({ Items: [GRANT] });
    await expect(access.readCached()).rejects.toThrow('throttled');
    expect((await access.readCached()).groupGrants).toHaveLength(1);
  });
});

describe('a blob link read for a pull', () => {
  const blobs = new BlobIndex(dynamo, 'registry');
  const LINK = { PK: 'REPO#app', SK: 'LINK#sha256:a', digest: 'sha256:a', size: 3, objectKey: 'blobs/u1' };

  it('is one eventually consistent GetItem when the link is there', async () => {
    ddb.on(GetCommand).resolves({ Item: LINK });
    expect(await blobs.getLink('app', 'sha256:a', { eventual: true })).toEqual({ digest: 'sha256:a', size: 3, objectKey: 'blobs/u1' });
    expect(ddb.commandCalls(GetCommand).map((call) => call.args[0].input.ConsistentRead)).toEqual([false]);
  });

  it('reads again, strongly consistent, on a miss: a blob linked a moment ago is found', async () => {
    ddb.on(GetCommand, { ConsistentRead: false }).resolves({}).on(GetCommand, { ConsistentRead: true }).resolves({ Item: LINK });
    expect(await blobs.getLink('app', 'sha256:a', { eventual: true })).toMatchObject({ objectKey: 'blobs/u1' });
    expect(ddb.commandCalls(GetCommand).map((call) => call.args[0].input.ConsistentRead)).toEqual([false, true]);
  });
});

describe('blob reads in a replica region', () => {
  it('asks S3 whether an object has replicated only until it has, once per object', async () => {
    // The primary's client is built inside, from the environment's credentials: presigning needs some.
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'x');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'x');
    const s3 = new S3Client({ region: 'eu-west-1', credentials });
    const s3Mock = mockClient(s3);
    s3Mock.on(HeadObjectCommand, { Key: 'blobs/here' }).resolves({ ContentLength: 3 });
    s3Mock.on(HeadObjectCommand, { Key: 'blobs/not-yet' }).rejects(Object.assign(new Error('NotFound'), { name: 'NotFound' }));
    const config = { presignExpirySeconds: 60, replica: { primaryRegion: 'us-east-1', primaryBucketName: 'primary' } } as unknown as RegistryConfig;
    const reads = blobReadsFor(config, new BlobObjectStore(s3, 'replica'));

    for (let i = 0; i < 3; i++) expect(await reads.presignRead('blobs/here')).toContain('replica');
    expect(s3Mock.commandCalls(HeadObjectCommand, { Key: 'blobs/here' })).toHaveLength(1);
    // Not replicated yet: the primary's bucket, and the replica is asked again next time.
    expect(await reads.presignRead('blobs/not-yet')).toContain('primary');
    expect(await reads.presignRead('blobs/not-yet')).toContain('primary');
    expect(s3Mock.commandCalls(HeadObjectCommand, { Key: 'blobs/not-yet' })).toHaveLength(2);
    vi.unstubAllEnvs();
  });
});
