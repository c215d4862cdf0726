import type { PlainStreamRecord } from '../../storage/table-stream.js';

/**
 * One committed change to the metadata table, as DynamoDB Streams reports it, images already
 * unmarshalled: the same shape from the stream Lambda in AWS and from the local poller on
 * DynamoDB Local (docs/events.md). Defined with the poller in storage/, which cannot import this.
 */
export type StreamRecord = PlainStreamRecord;

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
