import { DeleteCommand, GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { keys } from './keys.js';
import { isConditionFailure } from './dynamo-errors.js';
import { existingValues } from './batch-get.js';

export interface BlobRecord {
  digest: string;
  size: number;
  objectKey: string;
}

/**
 * Which blobs exist (globally, stored once by content) and which repositories they are linked
 * to. A link carries the size and object key too, so that a blob HEAD or GET is one read.
 */
export class BlobIndex {
  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async getBlob(digest: string): Promise<BlobRecord | undefined> {
    const { Item } = await this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.blob(digest) }));
    return Item ? toRecord(Item) : undefined;
  }

  /** Records a blob unless one is recorded already; answers the record that is in force. */
  async recordBlob(record: BlobRecord): Promise<{ created: boolean; record: BlobRecord }> {
    try {
      await this.dynamo.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.blob(record.digest), ...record, createdAt: Date.now() },
          ConditionExpression: 'attribute_not_exists(PK)',
        }),
      );
      return { created: true, record };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const existing = await this.getBlob(record.digest);
      if (!existing) throw error;
      return { created: false, record: existing };
    }
  }

  async getLink(repository: string, digest: string): Promise<BlobRecord | undefined> {
    const { Item } = await this.dynamo.send(
      new GetCommand({ TableName: this.tableName, Key: keys.blobLink(repository, digest), ConsistentRead: true }),
    );
    return Item ? toRecord(Item) : undefined;
  }

  async link(repository: string, record: BlobRecord): Promise<void> {
    await this.dynamo.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { ...keys.blobLink(repository, record.digest), ...record, linkedAt: Date.now() },
      }),
    );
  }

  /** Answers false when the blob was not linked to the repository. */
  async unlink(repository: string, digest: string): Promise<boolean> {
    try {
      await this.dynamo.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: keys.blobLink(repository, digest),
          ConditionExpression: 'attribute_exists(PK)',
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /** The subset of `digests` linked to the repository. */
  linkedAmong(repository: string, digests: readonly string[]): Promise<Set<string>> {
    const itemKeys = [...new Set(digests)].map((digest) => keys.blobLink(repository, digest));
    return existingValues(this.dynamo, this.tableName, itemKeys, 'digest');
  }
}

function toRecord(item: Record<string, unknown>): BlobRecord {
  return { digest: item.digest as string, size: item.size as number, objectKey: item.objectKey as string };
}
