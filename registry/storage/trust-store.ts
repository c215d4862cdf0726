import { DeleteCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { WorkloadTrust } from '../model/auth/workload-trust.js';
import { CachedRead } from './cached-read.js';
import { isConditionFailure } from './dynamo-errors.js';
import { TRUST_PARTITION, keys } from './keys.js';
import { queryItems } from './query-items.js';

/**
 * How long a warm instance decides logins on the trusts it read. A removed trust may still be
 * honoured this long by an instance that read it just before; the registry tokens it issues live
 * minutes anyway (docs/storage.md).
 */
export const TRUST_CACHE_MS = 5_000;

/**
 * OIDC workload trusts as data (docs/logins.md): one small partition, read whole by token requests
 * (`find`, eventually consistent, at most once per TRUST_CACHE_MS per instance) and by the admin
 * CLI (`list`, strongly consistent).
 */
export class TrustStore {
  private readonly cached: CachedRead<Map<string, WorkloadTrust>>;

  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
    now: () => number = Date.now,
  ) {
    this.cached = new CachedRead(async () => new Map((await this.read(true)).map((trust) => [trust.name, trust])), TRUST_CACHE_MS, now);
  }

  /** The trust a login names, as read at most TRUST_CACHE_MS ago. */
  async find(name: string): Promise<WorkloadTrust | undefined> {
    return (await this.cached.get()).get(name);
  }

  /** Every trust as stored now. */
  list(): Promise<WorkloadTrust[]> {
    return this.read(false);
  }

  /** Answers false when a trust of that name exists already. */
  async add(trust: WorkloadTrust): Promise<boolean> {
    try {
      await this.dynamo.send(
        new PutCommand({ TableName: this.tableName, Item: { ...keys.trust(trust.name), ...trust }, ConditionExpression: 'attribute_not_exists(PK)' }),
      );
      this.cached.clear();
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /** Answers false when there is no such trust. */
  async remove(name: string): Promise<boolean> {
    try {
      await this.dynamo.send(new DeleteCommand({ TableName: this.tableName, Key: keys.trust(name), ConditionExpression: 'attribute_exists(PK)' }));
      this.cached.clear();
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  private async read(eventual: boolean): Promise<WorkloadTrust[]> {
    return (await queryItems(this.dynamo, this.tableName, TRUST_PARTITION, { eventual })).map((item) => {
      const { PK: _pk, SK: _sk, ...trust } = item;
      return trust as unknown as WorkloadTrust;
    });
  }
}
