import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConditionalCheckFailedException,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  GetItemCommand,
  ListTablesCommand,
  PutItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { ensureRegistryResources, startStandIns, type StandIns } from '../../../scripts/local/stand-ins.js';
import { LOCAL_CREDENTIALS } from '../../../scripts/local/local-credentials.js';

const TIMEOUT = 120_000;
const MiB = 1024 * 1024;
const REGION = 'us-east-1';
const TABLE = 'registry-test';
const BUCKET = 'registry-test-blobs';

function resources(standIns: StandIns) {
  return {
    region: REGION,
    tableName: TABLE,
    bucketName: BUCKET,
    dynamoEndpoint: standIns.dynamoEndpoint,
    s3Endpoint: standIns.s3Endpoint,
  };
}

function s3Client(standIns: StandIns): S3Client {
  return new S3Client({
    region: REGION,
    endpoint: standIns.s3Endpoint,
    credentials: LOCAL_CREDENTIALS,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

function dynamoClient(standIns: StandIns): DynamoDBClient {
  return new DynamoDBClient({ region: REGION, endpoint: standIns.dynamoEndpoint, credentials: LOCAL_CREDENTIALS });
}

const md5 = (bytes: Uint8Array) => createHash('md5').update(bytes).digest('hex');

/** A running set of stand-ins in its own temporary data dir, with the registry's resources. */
async function startInTempDir(): Promise<{ dataDir: string; standIns: StandIns }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'stand-ins-test-'));
  const standIns = await startStandIns({ dataDir });
  await ensureRegistryResources(resources(standIns));
  return { dataDir, standIns };
}

async function withClients(standIns: StandIns, use: (s3: S3Client, dynamo: DynamoDBClient) => Promise<void>): Promise<void> {
  const s3 = s3Client(standIns);
  const dynamo = dynamoClient(standIns);
  try {
    await use(s3, dynamo);
  } finally {
    s3.destroy();
    dynamo.destroy();
  }
}

async function getBytes(s3: S3Client, key: string): Promise<Buffer> {
  const { Body } = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await Body!.transformToByteArray());
}

async function uploadParts(s3: S3Client, key: string, uploadId: string, parts: Buffer[]): Promise<CompletedPart[]> {
  const completed: CompletedPart[] = [];
  for (const [index, body] of parts.entries()) {
    const PartNumber = index + 1;
    const { ETag } = await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, PartNumber, Body: body }));
    completed.push({ PartNumber, ETag });
  }
  return completed;
}

async function createUpload(s3: S3Client, key: string): Promise<string> {
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
  return UploadId!;
}

describe('local AWS stand-ins', () => {
  let dataDir: string;
  let standIns: StandIns;
  let s3: S3Client;
  let dynamo: DynamoDBClient;

  beforeAll(async () => {
    ({ dataDir, standIns } = await startInTempDir());
    s3 = s3Client(standIns);
    dynamo = dynamoClient(standIns);
  }, TIMEOUT);

  afterAll(async () => {
    s3?.destroy();
    dynamo?.destroy();
    await standIns?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }, TIMEOUT);

  describe('S3 (s3rver)', () => {
    it(
      'assembles a multipart upload of two 5 MiB parts and a 1-byte last part',
      async () => {
        const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(1)];
        const key = 'blobs/multipart';
        const uploadId = await createUpload(s3, key);
        const completed = await uploadParts(s3, key, uploadId, parts);
        expect(completed.map((part) => part.ETag)).toEqual(parts.map((part) => `"${md5(part)}"`));

        const { ETag } = await s3.send(
          new CompleteMultipartUploadCommand({
            Bucket: BUCKET,
            Key: key,
            UploadId: uploadId,
            MultipartUpload: { Parts: completed },
          }),
        );

        const partMd5s = Buffer.concat(parts.map((part) => Buffer.from(md5(part), 'hex')));
        expect(ETag).toBe(`"${md5(partMd5s)}-3"`);
        expect((await getBytes(s3, key)).equals(Buffer.concat(parts))).toBe(true);
        const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
        expect(head.ContentLength).toBe(10 * MiB + 1);
        expect(head.ETag).toBe(ETag);
      },
      TIMEOUT,
    );

    it(
      'serves an object completed from parts like any other: byte ranges across part boundaries, HEAD, listing, copy, replace and delete',
      async () => {
        const parts = [randomBytes(5 * MiB + 1), randomBytes(5 * MiB), randomBytes(3)];
        const whole = Buffer.concat(parts);
        const key = 'blobs/parts/object';
        // Objects of other tests in this bucket keep their parts here too.
        const partsDirs = () => readdir(join(dataDir, 's3', BUCKET, '._S3rver_parts')).catch(() => []);
        const before = await partsDirs();
        const uploadId = await createUpload(s3, key);
        const completed = await uploadParts(s3, key, uploadId, parts);
        const { ETag } = await s3.send(
          new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, MultipartUpload: { Parts: completed } }),
        );
        const ranged = async (objectKey: string, Range: string) => {
          const { Body, ContentRange, ContentLength } = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: objectKey, Range }));
          return { bytes: Buffer.from(await Body!.transformToByteArray()), ContentRange, ContentLength };
        };
        const first = 5 * MiB + 1;
        const second = first + 5 * MiB;
        for (const [start, end] of [
          [first - 2, first + 1],
          [first - 1, first - 1],
          [first, first],
          [second - 1, second],
          [1, whole.length - 2],
          [0, 0],
        ] as const) {
          const { bytes, ...answer } = await ranged(key, `bytes=${start}-${end}`);
          expect(answer).toEqual({ ContentRange: `bytes ${start}-${end}/${whole.length}`, ContentLength: end + 1 - start });
          // Buffer#equals: a deep toEqual of 10 MiB takes minutes.
          expect(bytes.equals(whole.subarray(start, end + 1))).toBe(true);
        }
        expect((await ranged(key, 'bytes=-5')).bytes.equals(whole.subarray(-5))).toBe(true);
        expect((await ranged(key, `bytes=${second - 1}-`)).bytes.equals(whole.subarray(second - 1))).toBe(true);
        await expect(ranged(key, `bytes=${whole.length}-`)).rejects.toMatchObject({ name: 'InvalidRange' });
        expect((await getBytes(s3, key)).equals(whole)).toBe(true);
        expect(await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))).toMatchObject({ ContentLength: whole.length, ETag });
        const presigned = await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: key }), { expiresIn: 60 });
        const fetched = await fetch(presigned, { headers: { range: `bytes=${first - 1}-${first}` } });
        expect([fetched.status, Buffer.from(await fetched.arrayBuffer()).equals(whole.subarray(first - 1, first + 1))]).toEqual([206, true]);
        const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'blobs/parts/' }));
        expect(listed.Contents?.map((object) => [object.Key, object.Size, object.ETag])).toEqual([[key, whole.length, ETag]]);

        await s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'blobs/parts/copy', CopySource: `${BUCKET}/${key}` }));
        await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
        await expect(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))).rejects.toMatchObject({ name: 'NotFound' });
        expect((await getBytes(s3, 'blobs/parts/copy')).equals(whole)).toBe(true);
        expect((await ranged('blobs/parts/copy', `bytes=${first - 1}-${first}`)).bytes.equals(whole.subarray(first - 1, first + 1))).toBe(true);
        expect(await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'blobs/parts/copy' }))).toMatchObject({ ContentLength: whole.length });

        // Replaced by a PutObject, then deleted: no part file stays behind.
        await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'blobs/parts/copy', Body: 'small' }));
        expect((await getBytes(s3, 'blobs/parts/copy')).toString()).toBe('small');
        await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'blobs/parts/copy' }));
        expect(await partsDirs()).toEqual(before);
      },
      TIMEOUT,
    );

    it(
      'lists the parts of a multipart upload as S3 pages them: 1,000 a page, ascending, with the marker for the next; NoSuchUpload for another key',
      async () => {
        const key = 'blobs/listed';
        const uploadId = await createUpload(s3, key);
        const count = 1_003;
        const bodies = Array.from({ length: count }, (_, index) => Buffer.from(`part ${index + 1}`));
        for (let start = 0; start < count; start += 50) {
          await Promise.all(
            bodies
              .slice(start, start + 50)
              .map((body, offset) =>
                s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, PartNumber: start + offset + 1, Body: body })),
              ),
          );
        }
        const first = await s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId }));
        expect(first.Parts).toHaveLength(1_000);
        expect(first.IsTruncated).toBe(true);
        expect(first.NextPartNumberMarker).toBe('1000');
        expect(first.Parts!.slice(0, 2).map((part) => [part.PartNumber, part.ETag, part.Size])).toEqual([
          [1, `"${md5(bodies[0]!)}"`, bodies[0]!.length],
          [2, `"${md5(bodies[1]!)}"`, bodies[1]!.length],
        ]);
        const second = await s3.send(
          new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, PartNumberMarker: first.NextPartNumberMarker }),
        );
        expect(second.IsTruncated).toBe(false);
        expect(second.Parts!.map((part) => part.PartNumber)).toEqual([1_001, 1_002, 1_003]);
        const small = await s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, MaxParts: 2, PartNumberMarker: '10' }));
        expect(small.Parts!.map((part) => part.PartNumber)).toEqual([11, 12]);
        await expect(s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: 'blobs/other', UploadId: uploadId }))).rejects.toMatchObject({
          name: 'NoSuchUpload',
        });
      },
      TIMEOUT,
    );

    it(
      'serves a presigned GET URL to plain fetch',
      async () => {
        const body = randomBytes(64 * 1024);
        await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'blobs/presigned', Body: body }));
        const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: 'blobs/presigned' }), {
          expiresIn: 60,
        });

        const response = await fetch(url);

        expect(response.status).toBe(200);
        expect(Buffer.from(await response.arrayBuffer()).equals(body)).toBe(true);
      },
      TIMEOUT,
    );

    it(
      'checks presigned URL signatures and expiry as S3 does: a tampered or expired URL is refused',
      async () => {
        await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'blobs/signed-a', Body: 'a' }));
        await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'blobs/signed-b', Body: 'b' }));
        const url = new URL(await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: 'blobs/signed-a' }), { expiresIn: 60 }));
        const refusal = async (target: URL | string, init?: RequestInit) => {
          const response = await fetch(target, init);
          return { status: response.status, code: /<Code>([^<]+)<\/Code>/.exec(await response.text())?.[1] };
        };
        expect(await (await fetch(url)).text()).toBe('a');

        const otherKey = new URL(url);
        otherKey.pathname = otherKey.pathname.replace('signed-a', 'signed-b');
        expect(await refusal(otherKey)).toEqual({ status: 403, code: 'SignatureDoesNotMatch' });
        const longer = new URL(url);
        longer.searchParams.set('X-Amz-Expires', '3600');
        expect(await refusal(longer)).toEqual({ status: 403, code: 'SignatureDoesNotMatch' });
        expect(await refusal(url, { method: 'DELETE' })).toEqual({ status: 403, code: 'SignatureDoesNotMatch' });
        const put = new URL(await getSignedUrl(s3, new PutObjectCommand({ Bucket: BUCKET, Key: 'blobs/signed-put' }), { expiresIn: 60 }));
        expect((await fetch(put, { method: 'PUT', body: 'put' })).status).toBe(200);

        const soon = new URL(await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: 'blobs/signed-a' }), { expiresIn: 1 }));
        await new Promise((resolve) => setTimeout(resolve, 2_100));
        expect(await refusal(soon)).toEqual({ status: 403, code: 'AccessDenied' });
      },
      TIMEOUT,
    );

    it(
      'puts, heads, copies and deletes objects',
      async () => {
        const body = Buffer.from('{"schemaVersion":2}');
        const put = await s3.send(
          new PutObjectCommand({
            Bucket: BUCKET,
            Key: 'manifests/a',
            Body: body,
            ContentType: 'application/vnd.oci.image.manifest.v1+json',
          }),
        );
        expect(put.ETag).toBe(`"${md5(body)}"`);

        const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'manifests/a' }));
        expect(head).toMatchObject({
          ContentLength: body.length,
          ContentType: 'application/vnd.oci.image.manifest.v1+json',
          ETag: put.ETag,
        });

        await s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'manifests/b', CopySource: `${BUCKET}/manifests/a` }));
        expect((await getBytes(s3, 'manifests/b')).equals(body)).toBe(true);

        await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'manifests/a' }));
        await expect(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'manifests/a' }))).rejects.toMatchObject({
          name: 'NotFound',
        });
        expect((await getBytes(s3, 'manifests/b')).equals(body)).toBe(true);
      },
      TIMEOUT,
    );

    it(
      'aborts a multipart upload, after which the upload is gone',
      async () => {
        const key = 'blobs/aborted';
        const uploadId = await createUpload(s3, key);
        const [part] = await uploadParts(s3, key, uploadId, [randomBytes(1024)]);

        const aborted = await s3.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId }));

        expect(aborted.$metadata.httpStatusCode).toBe(204);
        const noSuchUpload = { name: 'NoSuchUpload' };
        await expect(uploadParts(s3, key, uploadId, [randomBytes(1)])).rejects.toMatchObject(noSuchUpload);
        await expect(
          s3.send(
            new CompleteMultipartUploadCommand({
              Bucket: BUCKET,
              Key: key,
              UploadId: uploadId,
              MultipartUpload: { Parts: [part] },
            }),
          ),
        ).rejects.toMatchObject(noSuchUpload);
        await expect(s3.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId }))).rejects.toMatchObject(noSuchUpload);
      },
      TIMEOUT,
    );

    it(
      'refuses completions that S3 refuses, and keeps running',
      async () => {
        const key = 'blobs/refused';
        const uploadId = await createUpload(s3, key);
        const [small, last] = await uploadParts(s3, key, uploadId, [randomBytes(1024), randomBytes(1)]);
        const complete = (Parts: CompletedPart[]) =>
          s3.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, MultipartUpload: { Parts } }));

        await expect(complete([small, { PartNumber: 3, ETag: last.ETag }])).rejects.toMatchObject({
          name: 'InvalidPart',
        });
        await expect(complete([small, { PartNumber: 2, ETag: `"${md5(Buffer.from('x'))}"` }])).rejects.toMatchObject({
          name: 'InvalidPart',
        });
        await expect(complete([last, small])).rejects.toMatchObject({ name: 'InvalidPartOrder' });
        await expect(complete([small, last])).rejects.toMatchObject({ name: 'EntityTooSmall' });
        await expect(complete([small])).resolves.toBeDefined();
        await expect(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))).resolves.toMatchObject({
          ContentLength: 1024,
        });
      },
      TIMEOUT,
    );
  });

  describe('S3 SHA-256 checksums (as S3 verifies x-amz-checksum-sha256)', () => {
    const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('base64');

    it(
      'stores a PutObject whose body matches, and returns the checksum on HeadObject and GetObject with checksum mode',
      async () => {
        const body = randomBytes(3 * MiB);
        const key = 'direct/sha256/matching';
        const events: string[] = [];
        standIns.onS3Event((event) => events.push(`${event.Records[0]!.eventName} ${event.Records[0]!.s3.object.key}`));
        const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ChecksumSHA256: sha256(body) }));
        expect(put.ChecksumSHA256).toBe(sha256(body));
        const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key, ChecksumMode: 'ENABLED' }));
        expect(head.ChecksumSHA256).toBe(sha256(body));
        const plainHead = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
        expect(plainHead.ChecksumSHA256).toBeUndefined();
        const get = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, ChecksumMode: 'ENABLED' }));
        expect(get.ChecksumSHA256).toBe(sha256(body));
        expect(Buffer.from(await get.Body!.transformToByteArray()).equals(body)).toBe(true);
        expect(events).toContain(`ObjectCreated:Put ${key}`);
      },
      TIMEOUT,
    );

    it(
      'refuses a body of another digest with 400 BadDigest and stores nothing, keeping what the key held',
      async () => {
        const key = 'direct/sha256/lying';
        const claimed = randomBytes(1 * MiB);
        await expect(
          s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: randomBytes(1 * MiB), ChecksumSHA256: sha256(claimed) })),
        ).rejects.toMatchObject({ name: 'BadDigest', $metadata: { httpStatusCode: 400 } });
        await expect(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))).rejects.toMatchObject({ name: 'NotFound' });

        const earlier = randomBytes(1024);
        await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: earlier }));
        await expect(
          s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: claimed, ChecksumSHA256: sha256(earlier) })),
        ).rejects.toMatchObject({
          name: 'BadDigest',
        });
        expect((await getBytes(s3, key)).equals(earlier)).toBe(true);
      },
      TIMEOUT,
    );

    it(
      'refuses a checksum that is not the base64 of 32 bytes with 400 InvalidRequest',
      async () => {
        await expect(
          s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'direct/sha256/malformed', Body: 'x', ChecksumSHA256: 'not-a-checksum' })),
        ).rejects.toMatchObject({ name: 'InvalidRequest', $metadata: { httpStatusCode: 400 } });
      },
      TIMEOUT,
    );
  });

  describe('DynamoDB Local', () => {
    it(
      'has the registry table with its key schema and TTL, and ensureRegistryResources is idempotent',
      async () => {
        await ensureRegistryResources(resources(standIns));
        await ensureRegistryResources(resources(standIns));

        const { Table } = await dynamo.send(new DescribeTableCommand({ TableName: TABLE }));
        expect(Table?.KeySchema).toEqual([
          { AttributeName: 'PK', KeyType: 'HASH' },
          { AttributeName: 'SK', KeyType: 'RANGE' },
        ]);
        expect(Table?.AttributeDefinitions).toEqual(
          expect.arrayContaining([
            { AttributeName: 'PK', AttributeType: 'S' },
            { AttributeName: 'SK', AttributeType: 'S' },
          ]),
        );
        expect(Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
        const { TimeToLiveDescription } = await dynamo.send(new DescribeTimeToLiveCommand({ TableName: TABLE }));
        expect(TimeToLiveDescription).toEqual({ TimeToLiveStatus: 'ENABLED', AttributeName: 'expiresAt' });
      },
      TIMEOUT,
    );

    it(
      'runs TransactWriteItems with a ConditionCheck',
      async () => {
        await dynamo.send(new PutItemCommand({ TableName: TABLE, Item: { PK: { S: 'repo#app' }, SK: { S: 'repo' } } }));
        const tagWrite = (repository: string) =>
          new TransactWriteItemsCommand({
            TransactItems: [
              {
                ConditionCheck: {
                  TableName: TABLE,
                  Key: { PK: { S: `repo#${repository}` }, SK: { S: 'repo' } },
                  ConditionExpression: 'attribute_exists(PK)',
                },
              },
              {
                Put: {
                  TableName: TABLE,
                  Item: { PK: { S: `repo#${repository}` }, SK: { S: 'tag#latest' }, digest: { S: 'sha256:abc' } },
                  ConditionExpression: 'attribute_not_exists(PK)',
                },
              },
            ],
          });

        await dynamo.send(tagWrite('app'));
        const error = await dynamo.send(tagWrite('missing')).catch((caught: unknown) => caught);

        expect(error).toBeInstanceOf(TransactionCanceledException);
        expect((error as TransactionCanceledException).CancellationReasons?.map((reason) => reason.Code)).toEqual(['ConditionalCheckFailed', 'None']);
        await expect(dynamo.send(tagWrite('app'))).rejects.toBeInstanceOf(TransactionCanceledException);
        await expect(
          dynamo.send(
            new PutItemCommand({
              TableName: TABLE,
              Item: { PK: { S: 'repo#app' }, SK: { S: 'repo' } },
              ConditionExpression: 'attribute_not_exists(PK)',
            }),
          ),
        ).rejects.toBeInstanceOf(ConditionalCheckFailedException);
      },
      TIMEOUT,
    );
  });

  it(
    'keeps DynamoDB items and S3 objects across stop() and a restart on the same data dir',
    async () => {
      const own = await startInTempDir();
      try {
        const item = { PK: { S: 'blob#sha256:1' }, SK: { S: 'blob' }, size: { N: '3' } };
        await withClients(own.standIns, async (ownS3, ownDynamo) => {
          await ownDynamo.send(new PutItemCommand({ TableName: TABLE, Item: item }));
          await ownS3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'blobs/kept', Body: 'abc' }));
        });
        await own.standIns.stop();

        own.standIns = await startStandIns({ dataDir: own.dataDir });
        await ensureRegistryResources(resources(own.standIns));

        await withClients(own.standIns, async (ownS3, ownDynamo) => {
          const { Item } = await ownDynamo.send(new GetItemCommand({ TableName: TABLE, Key: { PK: item.PK, SK: item.SK } }));
          expect(Item).toEqual(item);
          expect((await getBytes(ownS3, 'blobs/kept')).toString()).toBe('abc');
        });
      } finally {
        await own.standIns.stop();
        await rm(own.dataDir, { recursive: true, force: true });
      }
    },
    TIMEOUT,
  );

  it(
    'runs a second set side by side on other ports, with its own data',
    async () => {
      const second = await startInTempDir();
      try {
        const ports = [standIns, second.standIns].flatMap((set) => [set.dynamoEndpoint, set.s3Endpoint].map((endpoint) => new URL(endpoint).port));
        expect(new Set(ports).size).toBe(4);

        await withClients(second.standIns, async (secondS3, secondDynamo) => {
          await secondDynamo.send(new PutItemCommand({ TableName: TABLE, Item: { PK: { S: 'only' }, SK: { S: 'second' } } }));
          await secondS3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'only-second', Body: 'x' }));
          expect((await secondDynamo.send(new ListTablesCommand({}))).TableNames).toEqual([TABLE]);
        });
        const { Item } = await dynamo.send(new GetItemCommand({ TableName: TABLE, Key: { PK: { S: 'only' }, SK: { S: 'second' } } }));
        expect(Item).toBeUndefined();
        await expect(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'only-second' }))).rejects.toMatchObject({
          name: 'NotFound',
        });
      } finally {
        await second.standIns.stop();
        await rm(second.dataDir, { recursive: true, force: true });
      }
    },
    TIMEOUT,
  );
});
