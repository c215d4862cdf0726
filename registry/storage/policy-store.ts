import { DeleteCommand, GetCommand, PutCommand, TransactWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ImmutableRule, ImmutableRuleSource } from '../model/policies/immutability.js';
import type { RetentionRule, UntaggedAction } from '../model/policies/retention.js';
import { IMMUTABLE_PREFIX, POLICY_PARTITION, RETENTION_PREFIX, keys } from './keys.js';
import { queryItems } from './query-items.js';
import { EPOCH_SHARDS, epochShardOf } from './gc-epoch.js';
import { ContendedError, isConditionFailure, retryingConflicts, type TransactionItem } from './dynamo-errors.js';

/** A rule change starts again this often when other rule changes keep landing under it. */
const RULE_WRITE_ATTEMPTS = 5;

/** The attributes of an immutable-rules snapshot item. */
export const SNAPSHOT_ATTRIBUTES = ['rules', 'version'] as const;

/** The immutable rules as a request read them, the snapshot version they came from, and the shard its write checks. */
export interface ImmutableRulesInForce {
  rules: ImmutableRule[];
  version: number;
  shard: number;
}

/** The immutable rules changed since they were read (the check of immutableRulesCheck failed). */
export class RulesChangedError extends Error {
  constructor() {
    super('the immutable rules changed during the request');
    this.name = 'RulesChangedError';
  }
}

/**
 * Retention and immutability rules, as data: changing them needs no redeploy.
 *
 * Immutable rules are read by every tagged push and tag delete, so besides one item per rule
 * (what the CLI lists and retention reads) the whole rule set is kept in a versioned snapshot,
 * in EPOCH_SHARDS identical items: a rule change rewrites every shard in the transaction that
 * writes the rule. A process keeps the snapshot it read and uses it without reading again; the
 * write it guards carries a ConditionCheck that the snapshot of the repository's shard still
 * has that version (immutableRulesCheck), so a rule changed meanwhile fails the write
 * (RulesChangedError) and the request reads the rules again. A rule therefore takes effect from
 * the next request after it is written, as if every request read it, at no read per request.
 */
export class PolicyStore implements ImmutableRuleSource {
  /**
   * The snapshot as this process last read it, from any shard: every rule change writes all
   * shards in one transaction, so they hold the same version and rules.
   */
  private snapshot: Omit<ImmutableRulesInForce, 'shard'> | undefined;

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
    const item = { ...keys.immutableRule(rule.pattern), kind: 'immutable', pattern: rule.pattern, excludes: rule.excludes, updatedAt: Date.now() };
    await this.changeImmutableRules((rules) => ({
      rules: [...rules.filter((existing) => existing.pattern !== rule.pattern), { pattern: rule.pattern, excludes: rule.excludes }],
      write: { Put: { TableName: this.tableName, Item: item } },
    }));
  }

  /** Answers false when the pattern had no immutable rule. */
  async removeImmutableRule(pattern: string): Promise<boolean> {
    return this.changeImmutableRules((rules) =>
      rules.some((rule) => rule.pattern === pattern)
        ? {
            rules: rules.filter((rule) => rule.pattern !== pattern),
            write: { Delete: { TableName: this.tableName, Key: keys.immutableRule(pattern) } },
          }
        : undefined,
    );
  }

  /** The rules this process last read, for a request about the repository, without a read; undefined before the first. */
  cachedImmutableRules(repository: string): ImmutableRulesInForce | undefined {
    return this.snapshot && { ...this.snapshot, shard: epochShardOf(repository) };
  }

  /** The snapshot item a request about the repository reads (for a caller that batches it with its own reads). */
  immutableSnapshotKey(repository: string): { PK: string; SK: string } {
    return keys.immutableSnapshot(epochShardOf(repository));
  }

  /**
   * Takes the repository's snapshot item as the caller read it (strongly consistent; undefined
   * when absent) and keeps it. A registry without a snapshot (its rules predate snapshots, or it
   * never had one) gets its first one now, version 0, from the rule items, once: on condition
   * that none exists, so a rule change racing it either lands first (and this reads its
   * snapshot) or finds version 0 and writes the next.
   */
  async learnImmutableRules(repository: string, item: Record<string, unknown> | undefined): Promise<ImmutableRulesInForce> {
    if (typeof item?.version === 'number') {
      this.snapshot = { rules: ((item.rules as ImmutableRule[] | undefined) ?? []).map(asRule), version: item.version };
      return this.cachedImmutableRules(repository)!;
    }
    const rules = await this.immutableRules();
    if (!(await this.writeSnapshot(rules, undefined, 0))) return this.immutableRulesFor(repository, { fresh: true });
    this.snapshot = { rules, version: 0 };
    return this.cachedImmutableRules(repository)!;
  }

  /** The rules for a request about the repository: as last read, or (`fresh`, or never read) read now. */
  async immutableRulesFor(repository: string, options: { fresh?: boolean } = {}): Promise<ImmutableRulesInForce> {
    const cached = options.fresh ? undefined : this.cachedImmutableRules(repository);
    if (cached) return cached;
    const { Item } = await this.dynamo.send(
      new GetCommand({
        TableName: this.tableName,
        Key: this.immutableSnapshotKey(repository),
        ConsistentRead: true,
        ProjectionExpression: SNAPSHOT_ATTRIBUTES.map((_, index) => `#s${index}`).join(', '),
        ExpressionAttributeNames: Object.fromEntries(SNAPSHOT_ATTRIBUTES.map((name, index) => [`#s${index}`, name])),
      }),
    );
    return this.learnImmutableRules(repository, Item);
  }

  /** Forgets the rules read: a check of them failed. */
  forgetImmutableRules(): void {
    this.snapshot = undefined;
  }

  /** The transaction item that holds only while the rules are still those `inForce` was read at. */
  immutableRulesCheck(inForce: ImmutableRulesInForce): TransactionItem {
    return { ConditionCheck: { TableName: this.tableName, Key: keys.immutableSnapshot(inForce.shard), ...versionIs(inForce.version) } };
  }

  /**
   * Writes a rule change and, in the same transaction, every snapshot shard: the rules read now
   * with the change applied, at the next version, on condition that no other change landed
   * since the version was read (read before the rules, so rules read are never older than it).
   * `change` answers undefined when there is nothing to change. Answers whether it wrote.
   */
  private async changeImmutableRules(
    change: (rules: ImmutableRule[]) => { rules: ImmutableRule[]; write: TransactionItem } | undefined,
  ): Promise<boolean> {
    for (let attempt = 1; attempt <= RULE_WRITE_ATTEMPTS; attempt++) {
      const { Item } = await this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.immutableSnapshot(0), ConsistentRead: true }));
      const version = typeof Item?.version === 'number' ? Item.version : undefined;
      const changed = change(await this.immutableRules());
      if (!changed) return false;
      if (await this.writeSnapshot(changed.rules, version, (version ?? 0) + 1, changed.write)) {
        this.snapshot = undefined;
        return true;
      }
    }
    throw new ContendedError('the immutable rules');
  }

  /** Writes `rules` at version `next` into every shard, with `write`, if the shards are still at `previous`; answers whether it did. */
  private async writeSnapshot(rules: ImmutableRule[], previous: number | undefined, next: number, write?: TransactionItem): Promise<boolean> {
    const snapshot = { rules, version: next, updatedAt: Date.now() };
    const shards: TransactionItem[] = Array.from({ length: EPOCH_SHARDS }, (_, shard) => ({
      Put: { TableName: this.tableName, Item: { ...keys.immutableSnapshot(shard), ...snapshot }, ...versionIs(previous) },
    }));
    try {
      await retryingConflicts(() => this.dynamo.send(new TransactWriteCommand({ TransactItems: [...(write ? [write] : []), ...shards] })));
      return true;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      return false;
    }
  }

  private async remove(key: { PK: string; SK: string }): Promise<boolean> {
    const result = await this.dynamo.send(new DeleteCommand({ TableName: this.tableName, Key: key, ReturnValues: 'ALL_OLD' }));
    return result?.Attributes !== undefined;
  }

  private query(prefix: string): Promise<Record<string, unknown>[]> {
    return queryItems(this.dynamo, this.tableName, POLICY_PARTITION, { prefix });
  }
}

function versionIs(version: number | undefined) {
  return version === undefined
    ? { ConditionExpression: 'attribute_not_exists(#version)', ExpressionAttributeNames: { '#version': 'version' } }
    : {
        ConditionExpression: '#version = :version',
        ExpressionAttributeNames: { '#version': 'version' },
        ExpressionAttributeValues: { ':version': version },
      };
}

function asRule(rule: ImmutableRule): ImmutableRule {
  return { pattern: rule.pattern, excludes: rule.excludes ?? [] };
}

/** Optional fields left out, whatever the client's marshalling options. */
function withoutUndefined(item: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(item).filter(([, value]) => value !== undefined));
}
