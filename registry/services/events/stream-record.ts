/**
 * One committed change to the metadata table, as DynamoDB Streams reports it, with the images
 * already unmarshalled to plain values (numbers as numbers, sets as arrays). The same shape
 * reaches the handlers from the stream Lambda in AWS and from the local poller on DynamoDB
 * Local (docs/events.md).
 */
export interface StreamRecord {
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

/**
 * Something that acts on committed changes: the events and webhooks, the audit forwarder.
 * It must be idempotent per `eventId` (the stream delivers at least once) and throw to have
 * the record redelivered.
 */
export type StreamRecordHandler = (record: StreamRecord) => Promise<void>;

/** Runs every handler on each record in order; a handler that throws fails the record (and the batch from it on). */
export async function dispatchStreamRecords(records: readonly StreamRecord[], handlers: readonly StreamRecordHandler[]): Promise<void> {
  for (const record of records) {
    for (const handler of handlers) await handler(record);
  }
}
