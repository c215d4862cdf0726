import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { BlobGoneError, BlobIndex } from '../../../registry/storage/blob-index.js';

const TABLE = 'registry';
const dynamo = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }));
const ddb = mockClient(dynamo);
const blobs = new BlobIndex(dynamo, TABLE);
const RECORD = { digest: `sha256:${'a'.repeat(64)}`, size: 10, objectKey: 'blobs/mine' };
const refused = () => new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });

beforeEach(() => ddb.reset());

describe('recording a blob', () => {
  it('replaces a record GC claimed only with one naming another object', async () => {
    ddb.on(PutCommand).resolves({});
    expect(await blobs.recordBlob(RECORD)).toEqual({ created: true, record: RECORD });
    expect(ddb.commandCalls(PutCommand)[0]!.args[0].input).toMatchObject({
      ConditionExpression: 'attribute_not_exists(PK) OR (attribute_exists(deleting) AND objectKey <> :objectKey)',
      ExpressionAttributeValues: { ':objectKey': 'blobs/mine' },
    });
  });

  it('refuses a finish retried after GC claimed the record of its own object: that object is being deleted', async () => {
    ddb.on(PutCommand).rejects(refused());
    ddb.on(GetCommand).resolves({ Item: { ...RECORD, deleting: 'run-1' } });
    await expect(blobs.recordBlob(RECORD)).rejects.toBeInstanceOf(BlobGoneError);
  });

  it('answers the live record another upload wrote', async () => {
    ddb.on(PutCommand).rejects(refused());
    ddb.on(GetCommand).resolves({ Item: { ...RECORD, objectKey: 'blobs/theirs' } });
    expect(await blobs.recordBlob(RECORD)).toEqual({ created: false, record: { ...RECORD, objectKey: 'blobs/theirs' } });
  });
});
