import { DeleteCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ImmutableRule, ImmutableRuleSource } from '../model/policies/immutability.js';
import type { RetentionRule, UntaggedAction } from '../model/policies/retention.js';
import { IMMUTABLE_PREFIX, POLICY_PARTITION, RETENTION_PREFIX, keys } from './keys.js';
import { queryItems } from './query-items.js';

/**
 * Retention and immutability rules, as data: changing them needs no redeploy. Every read is
 * strongly consistent, so a rule takes effect from the next request after it is written.
 */
export class PolicyStore implements ImmutableRuleSource {
  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async retentionRules(): Promise<RetentionRule[]> {
    const items = await this.query(RETENTION_PREFIX);
    return items.map((item) => ({
      pattern: item.pattern as string,
      keepLast: item.keepLast as number | undefined,
      keepMatching: item.keepMatching as string | undefined,
      onlyMatching: item.onlyMatching as string | undefined,
      deleteOlderThanDays: item.deleteOlderThanDays as number | undefined,
      untagged: (item.untagged as UntaggedAction | undefined) ?? 'keep',
    }));
  }

  /** Replaces the retention rule of the pattern. */
  async putRetentionRule(rule: RetentionRule): Promise<void> {
    await this.dynamo.send(
      new PutCommand({
        TableName: this.tableName,
        Item: withoutUndefined({
          ...keys.retentionRule(rule.pattern),
          kind: 'retention',
          pattern: rule.pattern,
          keepLast: rule.keepLast,
          keepMatching: rule.keepMatching,
          onlyMatching: rule.onlyMatching,
          deleteOlderThanDays: rule.deleteOlderThanDays,
          untagged: rule.untagged,
          updatedAt: Date.now(),
        }),
      }),
    );
  }

  /** Answers false when the pattern had no retention rule. */
  async removeRetentionRule(pattern: string): Promise<boolean> {
    return this.remove(keys.retentionRule(pattern));
  }

  async immutableRules(): Promise<ImmutableRule[]> {
    const items = await this.query(IMMUTABLE_PREFIX);
    return items.map((item) => ({ pattern: item.pattern as string, excludes: (item.excludes as string[] | undefined) ?? [] }));
  }

  /** Replaces the immutable rule of the pattern (and so its exclusions). */
  async putImmutableRule(rule: ImmutableRule): Promise<void> {
    await this.dynamo.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { ...keys.immutableRule(rule.pattern), kind: 'immutable', pattern: rule.pattern, excludes: rule.excludes, updatedAt: Date.now() },
      }),
    );
  }

  /** Answers false when the pattern had no immutable rule. */
  async removeImmutableRule(pattern: string): Promise<boolean> {
    return this.remove(keys.immutableRule(pattern));
  }

  private async remove(key: { PK: string; SK: string }): Promise<boolean> {
    const result = await this.dynamo.send(new DeleteCommand({ TableName: this.tableName, Key: key, ReturnValues: 'ALL_OLD' }));
    return result?.Attributes !== undefined;
  }

  private query(prefix: string): Promise<Record<string, unknown>[]> {
    return queryItems(this.dynamo, this.tableName, POLICY_PARTITION, { prefix });
  }
}

/** Optional fields left out, whatever the client's marshalling options. */
function withoutUndefined(item: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(item).filter(([, value]) => value !== undefined));
}
