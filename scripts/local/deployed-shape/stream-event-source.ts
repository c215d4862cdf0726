import type { AttributeValue, _Record as SdkStreamRecord } from '@aws-sdk/client-dynamodb-streams';
import type { AwsCredentialIdentity } from '@aws-sdk/types';
import type { DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent, AttributeValue as LambdaAttribute } from 'aws-lambda';
import { startStreamPoller, type StreamPoller } from '../../../registry/storage/table-stream.js';
import type { Logger } from '../../../registry/support/logger.js';
import type { LambdaFunction } from './lambda-emulator.js';

/**
 * The deployed shape's DynamoDB event source mapping (lib/constructs/events.ts): the table's
 * stream (DynamoDB Local's) read shard by shard, each read handed to the bundled function as
 * one batch in the event Lambda builds, with ReportBatchItemFailures honoured: the first
 * failed record and those after it are handed over again, and a function error hands the whole
 * batch over again. Not emulated: bisection, the one-second batching window, the day's maximum
 * record age and the on-failure queue (a record failing for ever is retried for ever here).
 */
export function startStreamEventSource(options: {
  region: string;
  endpoint: string;
  credentials: AwsCredentialIdentity;
  tableName: string;
  fn: LambdaFunction;
  logger: Logger;
  retryMs?: number;
}): Promise<StreamPoller> {
  return startStreamPoller({
    region: options.region,
    endpoint: options.endpoint,
    credentials: options.credentials,
    tableName: options.tableName,
    logger: options.logger,
    retryMs: options.retryMs,
    handleBatch: async (records, streamArn) => {
      const event = lambdaStreamEvent(records, options.region, streamArn);
      const answer = await options.fn.invoke<DynamoDBBatchResponse | undefined>(event);
      return firstFailure(records, answer);
    },
  });
}

/**
 * The event a DynamoDB event source mapping invokes a function with: JSON, images as Lambda
 * marshals them (binary values base64), the creation time in epoch seconds.
 */
export function lambdaStreamEvent(records: readonly SdkStreamRecord[], region: string, streamArn: string): DynamoDBStreamEvent {
  const event = {
    Records: records.map(
      (record): DynamoDBRecord => ({
        eventID: record.eventID,
        eventName: record.eventName,
        eventVersion: record.eventVersion ?? '1.1',
        eventSource: 'aws:dynamodb',
        awsRegion: region,
        eventSourceARN: streamArn,
        ...(record.userIdentity ? { userIdentity: record.userIdentity } : {}),
        dynamodb: {
          ApproximateCreationDateTime: record.dynamodb?.ApproximateCreationDateTime
            ? Math.floor(record.dynamodb.ApproximateCreationDateTime.getTime() / 1000)
            : undefined,
          Keys: lambdaImage(record.dynamodb?.Keys),
          NewImage: lambdaImage(record.dynamodb?.NewImage),
          OldImage: lambdaImage(record.dynamodb?.OldImage),
          SequenceNumber: record.dynamodb?.SequenceNumber,
          SizeBytes: record.dynamodb?.SizeBytes,
          StreamViewType: record.dynamodb?.StreamViewType,
        },
      }),
    ),
  };
  // What crosses to Lambda is JSON: nothing but what survives it.
  return JSON.parse(JSON.stringify(event)) as DynamoDBStreamEvent;
}

/**
 * Where Lambda starts again after a batch: at the earliest record the function reported; the
 * whole batch when it reported one without an identifier or one not in the batch.
 */
function firstFailure(records: readonly SdkStreamRecord[], answer: DynamoDBBatchResponse | undefined): string | undefined {
  const failures = new Set((answer?.batchItemFailures ?? []).map((failure) => failure.itemIdentifier ?? ''));
  if (failures.size === 0) return undefined;
  const failed = records.find((record) => failures.has(record.dynamodb?.SequenceNumber ?? ''));
  return (failed ?? records[0])!.dynamodb?.SequenceNumber;
}

function lambdaImage(image: Record<string, AttributeValue> | undefined): Record<string, LambdaAttribute> | undefined {
  return image && Object.fromEntries(Object.entries(image).map(([name, value]) => [name, lambdaAttribute(value)]));
}

function lambdaAttribute(value: AttributeValue): LambdaAttribute {
  if (value.B !== undefined) return { B: Buffer.from(value.B).toString('base64') };
  if (value.BS !== undefined) return { BS: value.BS.map((entry) => Buffer.from(entry).toString('base64')) };
  if (value.M !== undefined) return { M: lambdaImage(value.M)! };
  if (value.L !== undefined) return { L: value.L.map(lambdaAttribute) };
  return value as unknown as LambdaAttribute;
}
