import { GetCommand, TransactWriteCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { existingItems } from './batch-get.js';
import { keys } from './keys.js';
import { isConditionFailure, retryingConflicts, type TransactionItem } from './dynamo-errors.js';

/**
 * The epoch is kept in this many items, a repository's pushes checking one of them: every push
 * transaction holds its item, and DynamoDB lets only one ongoing transaction hold an item, so
 * one item for the whole registry would serialise all pushes. Pushes to one repository meet on
 * its catalog entry anyway.
 */
export const EPOCH_SHARDS = 16;

/**
 * The GC epoch: a counter each garbage-collection run advances before its mark. A manifest
 * push stamps the blobs it references with the epoch, and its transaction checks that the
 * epoch is still that one; a run claims only blobs stamped with an earlier epoch. So a push
 * that commits after a run began stamps its blobs so that the run cannot claim them, and a push
 * that committed before is seen by the run's mark: no clock is involved
 * (docs/garbage-collection.md). Every shard holds the same epoch once a run has set them all.
 */
export class GcEpoch {
  /** The epoch of each shard as this process last read it; pushes use it until a check fails. */
  private readonly cached = new Map<number, Promise<number>>();

  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** The epoch a push to the repository stamps its blobs with. */
  current(repository: string): Promise<number> {
    const shard = epochShardOf(repository);
    let epoch = this.cached.get(shard);
    if (!epoch) {
      epoch = this.read(shard);
      this.cached.set(shard, epoch);
      epoch.catch(() => this.cached.delete(shard));
    }
    return epoch;
  }

  /** The item to read for the repository's epoch when this process does not know it yet, for a caller batching its reads. */
  keyIfUnknown(repository: string): { PK: string; SK: string } | undefined {
    const shard = epochShardOf(repository);
    return this.cached.has(shard) ? undefined : keys.gcEpoch(shard);
  }

  /** Keeps the repository's epoch item as a caller read it (strongly consistent; undefined when absent). */
  learn(repository: string, item: Record<string, unknown> | undefined): void {
    this.cached.set(epochShardOf(repository), Promise.resolve(epochOf(item)));
  }

  /** Forgets the cached epoch: a transaction's check of it failed. */
  forget(repository: string): void {
    this.cached.delete(epochShardOf(repository));
  }

  /** The transaction item that holds only while the repository's shard is at `epoch`. */
  check(repository: string, epoch: number): TransactionItem {
    return {
      ConditionCheck: {
        TableName: this.tableName,
        Key: keys.gcEpoch(epochShardOf(repository)),
        ...(epoch === 0
          ? { ConditionExpression: 'attribute_not_exists(epoch)' }
          : { ConditionExpression: 'epoch = :epoch', ExpressionAttributeValues: { ':epoch': epoch } }),
      },
    };
  }

  /**
   * GC's start: a new epoch, the run's own, set in every shard before the run's mark. A shard
   * another run has already taken further keeps its value: every shard ends at or past it.
   */
  async advance(): Promise<number> {
    const shards = Array.from({ length: EPOCH_SHARDS }, (_, shard) => shard);
    const items = await existingItems(
      this.dynamo,
      this.tableName,
      shards.map((shard) => keys.gcEpoch(shard)),
    );
    const epoch = Math.max(0, ...items.map((item) => (item.epoch as number | undefined) ?? 0)) + 1;
    const raise = (shard: number) => ({
      TableName: this.tableName,
      Key: keys.gcEpoch(shard),
      UpdateExpression: 'SET epoch = :epoch',
      ConditionExpression: 'attribute_not_exists(epoch) OR epoch < :epoch',
      ExpressionAttributeValues: { ':epoch': epoch },
    });
    try {
      // All shards at once: one call, as long as no other run is raising them too.
      await retryingConflicts(() => this.dynamo.send(new TransactWriteCommand({ TransactItems: shards.map((shard) => ({ Update: raise(shard) })) })));
      return epoch;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
    // Another run got some of them further: raise the rest one by one.
    await Promise.all(
      shards.map(async (shard) => {
        try {
          await retryingConflicts(() => this.dynamo.send(new UpdateCommand(raise(shard))));
        } catch (error) {
          if (!isConditionFailure(error)) throw error;
        }
      }),
    );
    return epoch;
  }

  private async read(shard: number): Promise<number> {
    const { Item } = await this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.gcEpoch(shard), ConsistentRead: true }));
    return epochOf(Item);
  }
}

function epochOf(item: Record<string, unknown> | undefined): number {
  return (item?.epoch as number | undefined) ?? 0;
}

/** Which epoch item a repository's pushes check (FNV-1a of the name). */
export function epochShardOf(repository: string): number {
  let hash = 2166136261;
  for (let i = 0; i < repository.length; i++) hash = Math.imul(hash ^ repository.charCodeAt(i), 16777619) >>> 0;
  return hash % EPOCH_SHARDS;
}
