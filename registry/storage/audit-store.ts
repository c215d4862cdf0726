import { PutCommand, QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { AuditActor, AuditRecord } from '../model/audit/audit-record.js';
import type { TransactionItem } from './dynamo-errors.js';
import { AUDIT_PREFIX, auditBucket, keys } from './keys.js';

/** What `audit list` asks for: a time range, and optionally one repository, subject or action. */
export interface AuditQuery {
  since: Date;
  until: Date;
  repository?: string;
  subject?: string;
  /** An action and the actions under it (`delete` finds `delete.tag`). */
  action?: string;
}

/** Hour partitions queried at once while walking a range: a 90-day range is 2,160 of them. */
const BUCKETS_IN_FLIGHT = 8;

const HOUR_MS = 3600 * 1000;

/**
 * Audit records in the metadata table (docs/storage.md): one item each in the partition of its
 * UTC hour, sorted by time and id, with a TTL. A time range is read by querying each hour it
 * spans, with the filters applied by DynamoDB; nothing scans the table.
 */
export class AuditStore {
  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** The record as a write of another transaction: it commits with the change it records, or not at all. */
  putWrite(record: AuditRecord, expiresAt: number): TransactionItem {
    return { Put: { TableName: this.tableName, Item: this.item(record, expiresAt) } };
  }

  async put(record: AuditRecord, expiresAt: number): Promise<void> {
    await this.dynamo.send(new PutCommand({ TableName: this.tableName, Item: this.item(record, expiresAt) }));
  }

  /** The records of the range, oldest first, a few hour partitions read ahead. */
  async *query(query: AuditQuery): AsyncGenerator<AuditRecord> {
    const hours = hoursOf(query.since, query.until);
    const pending: Promise<AuditRecord[]>[] = [];
    let next = 0;
    const fill = () => {
      while (pending.length < BUCKETS_IN_FLIGHT && next < hours.length) pending.push(this.queryBucket(hours[next++]!, query));
    };
    fill();
    while (pending.length > 0) {
      const records = await pending.shift()!;
      fill();
      yield* records;
    }
  }

  private async queryBucket(hour: string, query: AuditQuery): Promise<AuditRecord[]> {
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {
      ':pk': auditBucket(hour),
      ':from': query.since.toISOString(),
      // After every `<time>#<id>` of the last millisecond.
      ':to': `${query.until.toISOString()}#~`,
    };
    const filters: string[] = [];
    if (query.repository !== undefined) {
      filters.push('#repository = :repository');
      names['#repository'] = 'repository';
      values[':repository'] = query.repository;
    }
    if (query.subject !== undefined) {
      filters.push('#subject = :subject');
      names['#subject'] = 'subject';
      values[':subject'] = query.subject;
    }
    if (query.action !== undefined) {
      filters.push('(#action = :action OR begins_with(#action, :actionPrefix))');
      names['#action'] = 'action';
      values[':action'] = query.action;
      values[':actionPrefix'] = `${query.action}.`;
    }
    const records: AuditRecord[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.dynamo.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'PK = :pk AND SK BETWEEN :from AND :to',
          ...(filters.length > 0 ? { FilterExpression: filters.join(' AND '), ExpressionAttributeNames: names } : {}),
          ExpressionAttributeValues: values,
          ExclusiveStartKey: startKey,
        }),
      );
      records.push(...(page.Items ?? []).map(recordOf));
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return records;
  }

  private item(record: AuditRecord, expiresAt: number): Record<string, unknown> {
    const { actor, ...rest } = record;
    return { ...keys.auditRecord(record.time, record.id), ...rest, subject: actor.subject, actorKind: actor.kind, expiresAt };
  }
}

/** A stored item back as a record (the stream forwarder reads the same items: audit-forwarder.ts). */
export function recordOf(item: Record<string, unknown>): AuditRecord {
  const { PK: _pk, SK: _sk, subject, actorKind, expiresAt: _expiresAt, ...rest } = item;
  return { ...(rest as Omit<AuditRecord, 'actor'>), actor: { subject, kind: actorKind } as AuditActor };
}

/** Whether a table item is an audit record. */
export function isAuditItem(item: Record<string, unknown> | undefined): boolean {
  return typeof item?.PK === 'string' && item.PK.startsWith(AUDIT_PREFIX);
}

/** The ISO times of each UTC hour the range touches, oldest first. */
export function hoursOf(since: Date, until: Date): string[] {
  const hours: string[] = [];
  for (let at = Math.floor(since.getTime() / HOUR_MS) * HOUR_MS; at <= until.getTime(); at += HOUR_MS) hours.push(new Date(at).toISOString());
  return hours;
}
