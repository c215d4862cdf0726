import { GetCommand, PutCommand, TransactWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { keys } from './keys.js';
import { getItem } from './get-item.js';
import { failedConditionIndexes, isConditionFailure, type TransactionItem } from './dynamo-errors.js';

export interface BlobRecord {
  digest: string;
  size: number;
  objectKey: string;
}

/** The blob is being deleted by garbage collection, or is gone: it must not be linked or referenced. */
export class BlobGoneError extends Error {
  constructor(readonly digest: string) {
    super(`blob ${digest} is no longer stored`);
    this.name = 'BlobGoneError';
  }
}

/** No record, or one GC has claimed that names another object (GC finishes only on the object it claimed). */
const RECORDABLE_BLOB = 'attribute_not_exists(PK) OR (attribute_exists(deleting) AND objectKey <> :objectKey)';

/** The blob record exists, GC has not claimed it, and it still holds the object the link names. */
const LIVE_BLOB = 'attribute_exists(PK) AND attribute_not_exists(deleting) AND objectKey = :objectKey';

/**
 * What garbage collection claims (gc/sweep-blobs.ts): the opposite of the touches below. The claim: the record is still the one the mark saw (same object), nobody has claimed it,
 * nothing has linked or referenced it since the cutoff, and no manifest push that committed
 * after this run began references it (such a push stamps it with this run's epoch or a later
 * one; one that committed earlier was seen by the mark). Every link and every manifest push
 * touches `lastLinkedAt` under the opposite condition (`deleting` absent), so from here on the
 * blob can no longer be linked or referenced, and HEAD, GET and mount treat it as absent.
 */
export const CLAIMABLE_BLOB =
  `${LIVE_BLOB} AND ` +
  '(lastLinkedAt < :cutoff OR (attribute_not_exists(lastLinkedAt) AND createdAt < :cutoff)) AND ' +
  '(attribute_not_exists(touchedEpoch) OR touchedEpoch < :epoch)';

/**
 * Which blobs exist (globally, stored once by content) and which repositories they are linked
 * to. Every link and every manifest reference "touches" the blob record (`lastLinkedAt`)
 * under the condition that garbage collection has not claimed it: GC claims only blobs
 * untouched for its grace period, so a blob in use can never be swept (docs/storage.md).
 */
export class BlobIndex {
  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** The live record of a blob; undefined when absent or claimed by GC. */
  async getBlob(digest: string): Promise<BlobRecord | undefined> {
    const { Item } = await this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.blob(digest), ConsistentRead: true }));
    return Item && !Item.deleting ? toRecord(Item) : undefined;
  }

  /**
   * Records a blob unless a live one is recorded already; answers the record in force. A record
   * GC has claimed is replaced by one naming another object: GC finishes only on the object it
   * claimed. A claimed record naming this very object (a finish retried after its record was
   * claimed) is BlobGoneError: GC is deleting that object, and the bytes must come again.
   */
  async recordBlob(record: BlobRecord): Promise<{ created: boolean; record: BlobRecord }> {
    for (;;) {
      try {
        const now = Date.now();
        await this.dynamo.send(
          new PutCommand({
            TableName: this.tableName,
            Item: { ...keys.blob(record.digest), ...record, createdAt: now, lastLinkedAt: now },
            ConditionExpression: RECORDABLE_BLOB,
            ExpressionAttributeValues: { ':objectKey': record.objectKey },
          }),
        );
        return { created: true, record };
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
      const { Item } = await this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.blob(record.digest), ConsistentRead: true }));
      if (Item && !Item.deleting) return { created: false, record: toRecord(Item) };
      if (Item?.objectKey === record.objectKey) throw new BlobGoneError(record.digest);
      // Deleted or replaced between the two calls: try again.
    }
  }

  /**
   * Records a new blob and links it into the repository in one transaction, together with
   * `alongside` (the upload session's end): what a finished upload needs, in one write. Answers
   * `recorded`; `exists` when a live record is there already, or a claimed one naming this very
   * object (recordBlob then sorts out which); `alongsideFailed` when a condition of `alongside`
   * failed. A claimed record naming another object is replaced, as recordBlob does.
   */
  async recordNewAndLink(
    repository: string,
    record: BlobRecord,
    alongside: TransactionItem[] = [],
  ): Promise<'recorded' | 'exists' | 'alongsideFailed'> {
    const now = Date.now();
    try {
      await this.dynamo.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.tableName,
                Item: { ...keys.blob(record.digest), ...record, createdAt: now, lastLinkedAt: now },
                ConditionExpression: RECORDABLE_BLOB,
                ExpressionAttributeValues: { ':objectKey': record.objectKey },
              },
            },
            { Put: { TableName: this.tableName, Item: { ...keys.blobLink(repository, record.digest), ...record, linkedAt: now } } },
            ...alongside,
          ],
        }),
      );
      return 'recorded';
    } catch (error) {
      const failed = failedConditionIndexes(error);
      if (failed.some((index) => index >= 2)) return 'alongsideFailed';
      if (failed.includes(0)) return 'exists';
      throw error;
    }
  }

  /**
   * The blob as visible in the repository, from its link item alone: the link holds the size
   * and the object key, and GC deletes a blob's links right after claiming it and before its
   * object, so a link names an object that is still stored (docs/storage.md). `eventual`: see
   * get-item.ts.
   */
  async getLink(repository: string, digest: string, options: { eventual?: boolean } = {}): Promise<BlobRecord | undefined> {
    const item = await getItem(this.dynamo, this.tableName, keys.blobLink(repository, digest), options);
    return item && toRecord(item);
  }

  /** Links the blob into the repository and touches it; BlobGoneError when GC has claimed it. */
  async link(repository: string, record: BlobRecord): Promise<void> {
    const now = Date.now();
    try {
      await this.dynamo.send(
        new TransactWriteCommand({
          TransactItems: [
            { Update: this.touchUpdate(record, now) },
            { Put: { TableName: this.tableName, Item: { ...keys.blobLink(repository, record.digest), ...record, linkedAt: now } } },
          ],
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) throw new BlobGoneError(record.digest);
      throw error;
    }
  }

  /**
   * The writes that make blobs referenced by a manifest being pushed, for the manifest's own
   * transaction: each touches a blob record, stamped with the GC epoch (gc-epoch.ts), on
   * condition that the record is still live. One write per record, in record order.
   */
  referenceWrites(records: readonly BlobRecord[], now: number, epoch: number): TransactionItem[] {
    return records.map((record) => ({
      Update: {
        ...this.touchUpdate(record, now),
        UpdateExpression: 'SET lastLinkedAt = :now, touchedEpoch = :epoch',
        ExpressionAttributeValues: { ':now': now, ':objectKey': record.objectKey, ':epoch': epoch },
      },
    }));
  }

  private touchUpdate(record: BlobRecord, now: number) {
    return {
      TableName: this.tableName,
      Key: keys.blob(record.digest),
      UpdateExpression: 'SET lastLinkedAt = :now',
      ConditionExpression: LIVE_BLOB,
      ExpressionAttributeValues: { ':now': now, ':objectKey': record.objectKey },
    };
  }
}

/** The link items of `digests` in the repository, once each. */
export function linkKeys(repository: string, digests: readonly string[]): Record<string, string>[] {
  return [...new Set(digests)].map((digest) => keys.blobLink(repository, digest));
}

/** The blob records the link items among `items` name, by digest (other items are skipped). */
export function linkedRecords(items: readonly Record<string, unknown>[]): Map<string, BlobRecord> {
  const linkPrefix = keys.blobLink('', '').SK;
  const records = new Map<string, BlobRecord>();
  for (const item of items) if ((item.SK as string).startsWith(linkPrefix)) records.set(item.digest as string, toRecord(item));
  return records;
}

function toRecord(item: Record<string, unknown>): BlobRecord {
  return { digest: item.digest as string, size: item.size as number, objectKey: item.objectKey as string };
}
