import { randomUUID } from 'node:crypto';
import { DeleteCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { keys } from './keys.js';
import { isConditionFailure } from './dynamo-errors.js';

/** Leases are deleted by their holder; TTL removes what a crashed holder left (a day later). */
const EXPIRY_SECONDS = 24 * 3600;

/**
 * Single flight of the upstream fetch of one tag of a pull-through cache repository
 * (`PULL#TAG#<repository>:<tag>`): the request that takes the lease asks the upstream, the
 * others wait for what it writes. A lease lapses on its own, so a holder that died delays the
 * others by at most its length.
 */
export class TagPullLeases {
  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** The holder id when the lease was free or lapsed; undefined when another request holds it. */
  async acquire(repository: string, tag: string, ms: number): Promise<string | undefined> {
    const holder = randomUUID();
    const now = this.now();
    try {
      await this.dynamo.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            ...keys.tagPullLease(repository, tag),
            holder,
            repository,
            leaseUntil: now + ms,
            expiresAt: Math.floor(now / 1000) + EXPIRY_SECONDS,
          },
          ConditionExpression: 'attribute_not_exists(PK) OR leaseUntil < :now',
          ExpressionAttributeValues: { ':now': now },
        }),
      );
      return holder;
    } catch (error) {
      if (isConditionFailure(error)) return undefined;
      throw error;
    }
  }

  async release(repository: string, tag: string, holder: string): Promise<void> {
    try {
      await this.dynamo.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: keys.tagPullLease(repository, tag),
          ConditionExpression: 'holder = :holder',
          ExpressionAttributeValues: { ':holder': holder },
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }
}
