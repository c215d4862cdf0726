import { DeleteCommand, GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { isConditionFailure } from './dynamo-errors.js';
import { keys } from './keys.js';

/**
 * Who copies a blob from an upstream into the cache (services/pull-through/blob-copy.ts), so
 * that concurrent first pulls of one blob make one upstream fetch. `fetching`: a request asked
 * the upstream; `dispatched`: the copier was asked to copy (meanwhile `redirectUrl` answers
 * followers, or they wait); `copying`: a copier holds it, renewing `leaseUntil`; `failed`: the
 * upstream served wrong bytes, refused until `leaseUntil` so that retries do not fetch again.
 */
export interface BlobPullLease {
  digest: string;
  holder: string;
  /** Epoch ms: until then nobody else takes the lease. */
  leaseUntil: number;
  /** Incremented on every save; a save based on a stale read is refused. */
  version: number;
  upstream: string;
  repository: string;
  upstreamPath: string;
  phase: 'fetching' | 'dispatched' | 'copying' | 'failed';
  /** The upstream's blob redirect (a capability URL: never logged) and until when it is handed on. */
  redirectUrl?: string;
  redirectUntil?: number;
  /** The upload session the copy writes into: its offset, hash state and parts are the checkpoint. */
  uploadId?: string;
  /** The blob's size, once the upstream said it. */
  size?: number;
  failure?: 'digest';
}

/** A lease item outlives any copy; DynamoDB's TTL removes what a crash left behind. */
const LEASE_TTL_SECONDS = 24 * 3600;

export class PullLeaseStore {
  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async get(digest: string): Promise<BlobPullLease | undefined> {
    const { Item } = await this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.blobPullLease(digest), ConsistentRead: true }));
    if (!Item) return undefined;
    const { PK: _pk, SK: _sk, expiresAt: _expires, ...lease } = Item;
    return lease as BlobPullLease;
  }

  /**
   * Takes the lease: when there is none, or `over` (the one read) has lapsed and is still the
   * one stored. Answers false when another request holds it.
   */
  async take(lease: Omit<BlobPullLease, 'version'>, over: BlobPullLease | undefined, now = Date.now()): Promise<BlobPullLease | undefined> {
    const next = { ...lease, version: (over?.version ?? 0) + 1 };
    const saved = await this.put(
      next,
      over
        ? { ConditionExpression: '#version = :version AND leaseUntil < :now', ExpressionAttributeValues: { ':version': over.version, ':now': now } }
        : { ConditionExpression: 'attribute_not_exists(PK)' },
    );
    return saved ? next : undefined;
  }

  /** Saves `lease` if the stored one is still at `lease.version - 1`; answers false otherwise. */
  async save(lease: BlobPullLease): Promise<boolean> {
    return this.put(lease, { ConditionExpression: '#version = :version', ExpressionAttributeValues: { ':version': lease.version - 1 } });
  }

  /** Ends the lease if it is still at `version` (the copy is recorded: the blob item answers from now on). */
  async end(digest: string, version: number): Promise<boolean> {
    try {
      await this.dynamo.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: keys.blobPullLease(digest),
          ConditionExpression: '#version = :version',
          ExpressionAttributeNames: { '#version': 'version' },
          ExpressionAttributeValues: { ':version': version },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  private async put(
    lease: BlobPullLease,
    condition: { ConditionExpression: string; ExpressionAttributeValues?: Record<string, unknown> },
  ): Promise<boolean> {
    try {
      await this.dynamo.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.blobPullLease(lease.digest), ...lease, expiresAt: Math.floor(Date.now() / 1000) + LEASE_TTL_SECONDS },
          ...condition,
          ...(condition.ConditionExpression.includes('#version') ? { ExpressionAttributeNames: { '#version': 'version' } } : {}),
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }
}
