import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type _Record as SdkStreamRecord,
} from '@aws-sdk/client-dynamodb-streams';
import type { AwsCredentialIdentity } from '@aws-sdk/types';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { Logger } from '../support/logger.js';

/** A stream record as Lambda's event source mapping or GetRecords hands it over (images as AttributeValues). */
export interface RawStreamRecord {
  eventID?: string;
  eventName?: string;
  dynamodb?: {
    Keys?: Record<string, unknown>;
    NewImage?: Record<string, unknown>;
    OldImage?: Record<string, unknown>;
    /** Epoch seconds in Lambda events, a Date from the SDK. */
    ApproximateCreationDateTime?: number | Date;
    SequenceNumber?: string;
  };
  /** Set on TTL deletions: `{ type: 'Service', principalId: 'dynamodb.amazonaws.com' }`. */
  userIdentity?: { type?: string; principalId?: string };
}

/** The plain form the handlers take (services/events/stream-record.ts `StreamRecord`), images unmarshalled to plain values (numbers as numbers, sets as arrays). */
export interface PlainStreamRecord {
  /** Unique per change; stable across redeliveries of the same record, so receivers can dedupe on it. */
  eventId: string;
  eventName: 'INSERT' | 'MODIFY' | 'REMOVE';
  keys: Record<string, unknown>;
  /** The item after the change (absent on REMOVE). */
  newImage?: Record<string, unknown>;
  /** The item before the change (absent on INSERT). */
  oldImage?: Record<string, unknown>;
  /** When the change was committed, in epoch milliseconds. */
  approximateCreationTime: number;
  /** A REMOVE by DynamoDB's TTL (the record's userIdentity is the dynamodb.amazonaws.com service). */
  expired?: boolean;
}

export function plainStreamRecord(raw: RawStreamRecord): PlainStreamRecord {
  const image = (value: Record<string, unknown> | undefined) =>
    value ? (unmarshall(value as never, { wrapNumbers: false }) as Record<string, unknown>) : undefined;
  const created = raw.dynamodb?.ApproximateCreationDateTime;
  return {
    eventId: raw.eventID ?? raw.dynamodb?.SequenceNumber ?? '',
    eventName: (raw.eventName ?? 'MODIFY') as PlainStreamRecord['eventName'],
    keys: image(raw.dynamodb?.Keys) ?? {},
    newImage: image(raw.dynamodb?.NewImage),
    oldImage: image(raw.dynamodb?.OldImage),
    approximateCreationTime: created instanceof Date ? created.getTime() : typeof created === 'number' ? created * 1000 : Date.now(),
    ...(raw.userIdentity?.type === 'Service' && raw.userIdentity.principalId === 'dynamodb.amazonaws.com' ? { expired: true } : {}),
  };
}

export interface StreamPollerOptions {
  region: string;
  endpoint: string;
  credentials?: AwsCredentialIdentity;
  tableName: string;
  /**
   * Handles the records of one read, in order, as a Lambda event source mapping hands a batch
   * over; answers the sequence number of the first record that failed (ReportBatchItemFailures),
   * which is handed over again after `retryMs` with those after it, or nothing when all passed.
   * `recordByRecord` makes one of a handler of single records.
   */
  handleBatch: (records: SdkStreamRecord[], streamArn: string) => Promise<string | undefined>;
  logger: Logger;
  /** Between GetRecords calls on a shard that had nothing (default 200 ms). */
  pollMs?: number;
  retryMs?: number;
}

/** A batch handler (`handleBatch`) of a handler of single records: the first that throws stops the batch there. */
export function recordByRecord(
  handle: (record: PlainStreamRecord) => Promise<void>,
  logger: Logger,
): (records: readonly SdkStreamRecord[]) => Promise<string | undefined> {
  return async (records) => {
    for (const record of records) {
      try {
        await handle(plainStreamRecord(record as RawStreamRecord));
      } catch (error) {
        logger.error('stream record handler failed; handing it over again', { eventId: record.eventID, error: String(error) });
        return record.dynamodb?.SequenceNumber ?? '';
      }
    }
    return undefined;
  };
}

export interface StreamPoller {
  stop(): Promise<void>;
}

/**
 * Locally, what Lambda's event source mapping does in AWS: reads the table's stream (DynamoDB
 * Local's) shard by shard, in order, and hands each record to `handle`, the same record again
 * until it is handled. Starts at the stream's end (LATEST) on the shards open now, at their
 * start on shards that open later (docs/events.md: what DynamoDB Local's streams do).
 */
export async function startStreamPoller(options: StreamPollerOptions): Promise<StreamPoller> {
  const config = { region: options.region, endpoint: options.endpoint, credentials: options.credentials };
  const dynamo = new DynamoDBClient(config);
  const streams = new DynamoDBStreamsClient(config);
  const { Table } = await dynamo.send(new DescribeTableCommand({ TableName: options.tableName }));
  dynamo.destroy();
  const streamArn = Table?.LatestStreamArn;
  if (!streamArn) throw new Error(`table ${options.tableName} has no stream`);
  const pollMs = options.pollMs ?? 200;
  const retryMs = options.retryMs ?? 1000;
  let stopped = false;
  const started = new Set<string>();
  const loops: Promise<void>[] = [];
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref());

  const iteratorAt = async (shardId: string, type: 'LATEST' | 'TRIM_HORIZON' | 'AT_SEQUENCE_NUMBER', sequence?: string) =>
    (await streams.send(new GetShardIteratorCommand({ StreamArn: streamArn, ShardId: shardId, ShardIteratorType: type, SequenceNumber: sequence })))
      .ShardIterator;

  const readShard = async (shardId: string, from: 'LATEST' | 'TRIM_HORIZON') => {
    let iterator = await iteratorAt(shardId, from);
    while (!stopped && iterator) {
      let records: SdkStreamRecord[] = [];
      let next: string | undefined;
      try {
        const page = await streams.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 100 }));
        records = page.Records ?? [];
        next = page.NextShardIterator;
      } catch (error) {
        if (stopped) return;
        options.logger.warn('stream read failed', { shardId, error: String(error) });
        await sleep(retryMs);
        continue;
      }
      let failedAt: string | undefined;
      if (records.length > 0) {
        try {
          failedAt = await options.handleBatch(records, streamArn);
        } catch (error) {
          // The whole batch failed (a function error): all of it again, as Lambda retries it.
          options.logger.error('stream batch failed; handing it over again', { shardId, error: String(error) });
          failedAt = records[0]!.dynamodb?.SequenceNumber;
        }
      }
      if (failedAt) {
        await sleep(retryMs);
        iterator = await iteratorAt(shardId, 'AT_SEQUENCE_NUMBER', failedAt);
        continue;
      }
      iterator = next;
      if (records.length === 0) await sleep(pollMs);
    }
  };

  const discover = async (first: boolean) => {
    const { StreamDescription } = await streams.send(new DescribeStreamCommand({ StreamArn: streamArn }));
    for (const shard of StreamDescription?.Shards ?? []) {
      const shardId = shard.ShardId!;
      if (started.has(shardId)) continue;
      started.add(shardId);
      // At the start only open shards matter, from now on; a shard opening later is read whole.
      if (first && shard.SequenceNumberRange?.EndingSequenceNumber) continue;
      loops.push(
        readShard(shardId, first ? 'LATEST' : 'TRIM_HORIZON').catch((error: unknown) =>
          options.logger.error('stream shard reader stopped', { shardId, error: String(error) }),
        ),
      );
    }
  };
  await discover(true);
  const discovery = (async () => {
    while (!stopped) {
      await sleep(5_000);
      if (!stopped) await discover(false).catch((error: unknown) => options.logger.warn('stream shards not listed', { error: String(error) }));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await Promise.race([Promise.all([...loops, discovery]), sleep(pollMs * 2 + 100)]);
      streams.destroy();
    },
  };
}
