/** ManifestStore's writes, as DynamoDB receives them (aws-sdk-client-mock). */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, GetCommand, QueryCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { BlobIndex } from '../../../registry/storage/blob-index.js';
import { BlobObjectStore } from '../../../registry/storage/blob-object-store.js';
import { BlobInUseError, ManifestStore } from '../../../registry/storage/manifest-store.js';

const TABLE = 'registry';
const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
const dynamo = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1', credentials }), {
  marshallOptions: { removeUndefinedValues: true },
});
const ddb = mockClient(dynamo);
const blobs = new BlobIndex(dynamo, TABLE);
const objects = new BlobObjectStore(new S3Client({ region: 'us-east-1', credentials }), 'bucket');
const LAYER = { digest: `sha256:${'1'.repeat(64)}`, size: 3, objectKey: 'blobs/one' };
const SUBJECT = `sha256:${'5'.repeat(64)}`;

function manifest(annotations?: Record<string, string>) {
  return {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: `sha256:${'d'.repeat(64)}`,
    size: 2,
    bytes: new TextEncoder().encode('{}'),
    subject: SUBJECT,
    annotations,
    blobDigests: [LAYER.digest],
    childDigests: [],
  };
}

beforeEach(() => {
  ddb.reset();
  ddb.on(GetCommand).resolves({});
  ddb.on(TransactWriteCommand).resolves({});
});

describe('a manifest push', () => {
  it('is one transaction: the manifest, the catalog entry, the epoch check, the tag, the referrer and the blob touch', async () => {
    const store = new ManifestStore(dynamo, TABLE, objects, blobs);
    const annotations = JSON.parse('{"":"e","__proto__":"p","constructor":"c"}') as Record<string, string>;
    await store.putManifest('team/app', manifest(annotations), ['v1'], { blobs: [LAYER], unlinks: undefined });
    const items = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!;
    expect(items.map((item) => Object.keys(item)[0])).toEqual(['Put', 'Update', 'ConditionCheck', 'Put', 'Put', 'Update']);
    // The catalog entry counts the push and holds only while no blob was unlinked.
    expect(items[1]!.Update).toMatchObject({ ConditionExpression: 'attribute_not_exists(unlinks)' });
    // The blob touch is stamped with the epoch and needs the blob live.
    expect(items[5]!.Update).toMatchObject({ ExpressionAttributeValues: { ':epoch': 0, ':objectKey': 'blobs/one' } });
    // Annotations travel as JSON text, so no key can upset the marshaller.
    expect(JSON.parse(items[4]!.Put!.Item!.annotationsJson as string)).toEqual(annotations);
  });
});

describe('a blob unlink', () => {
  it('is refused while a manifest of the repository references the blob, and writes nothing', async () => {
    const store = new ManifestStore(dynamo, TABLE, objects, blobs);
    ddb.on(GetCommand).resolves({ Item: { pushes: 3, digest: LAYER.digest } });
    ddb.on(QueryCommand).resolves({ Items: [{ digest: `sha256:${'d'.repeat(64)}` }] });
    await expect(store.unlinkBlob('team/app', LAYER.digest)).rejects.toBeInstanceOf(BlobInUseError);
    expect(ddb.commandCalls(TransactWriteCommand)).toHaveLength(0);
  });

  it('deletes the link on condition that no push came since it looked, and counts the unlink', async () => {
    const store = new ManifestStore(dynamo, TABLE, objects, blobs);
    ddb.on(GetCommand).resolves({ Item: { pushes: 3, digest: LAYER.digest } });
    ddb.on(QueryCommand).resolves({ Items: [] });
    expect(await store.unlinkBlob('team/app', LAYER.digest)).toBe(true);
    const [unlink, counter] = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!;
    expect(unlink!.Delete!.Key).toEqual({ PK: 'REPO#team/app', SK: `LINK#${LAYER.digest}` });
    expect(counter!.Update).toMatchObject({
      UpdateExpression: 'ADD unlinks :one',
      ConditionExpression: 'pushes = :pushes',
      ExpressionAttributeValues: { ':pushes': 3 },
    });
  });
});
