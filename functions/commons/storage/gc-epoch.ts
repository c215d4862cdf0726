import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { keys } from './keys.js';
import type { TransactionItem } from './dynamo-errors.js';

/**
 * The GC epoch: a counter each garbage-collection run advances before its mark. A manifest
 * push stamps the blobs it references with the epoch, and its transaction checks that the
 * epoch is still that one; a run claims only blobs stamped with an earlier epoch. So a push
 * that commits after a run began stamps its blobs so that the run cannot claim them, and a push
 * that committed before is seen by the run's mark: no clock is involved
 * (docs/garbage-collection.md).
 */
export class GcEpoch {
  /** The epoch this process last read; pushes use it until a transaction finds it moved. */
  private cached: Promise<number> | undefined;

  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  current(): Promise<number> {
    this.cached ??= this.read();
    this.cached.catch(() => (this.cached = undefined));
    return this.cached;
  }

  /** Forgets the cached epoch: a transaction's check of it failed. */
  forget(): void {
    this.cached = undefined;
  }

  /** The transaction item that holds only while the epoch is `epoch`. */
  check(epoch: number): TransactionItem {
    return {
      ConditionCheck: {
        TableName: this.tableName,
        Key: keys.gcEpoch(),
        ...(epoch === 0
          ? { ConditionExpression: 'attribute_not_exists(epoch)' }
          : { ConditionExpression: 'epoch = :epoch', ExpressionAttributeValues: { ':epoch': epoch } }),
      },
    };
  }

  /** GC's start: a new epoch, the run's own. */
  async advance(): Promise<number> {
    const { Attributes } = await this.dynamo.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.gcEpoch(),
        UpdateExpression: 'ADD epoch :one',
        ExpressionAttributeValues: { ':one': 1 },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    return Attributes!.epoch as number;
  }

  private async read(): Promise<number> {
    const { Item } = await this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.gcEpoch(), ConsistentRead: true }));
    return (Item?.epoch as number | undefined) ?? 0;
  }
}
