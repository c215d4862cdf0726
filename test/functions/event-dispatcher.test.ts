import type { DynamoDBStreamEvent } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

/**
 * The stream function (functions/event-dispatcher.ts): a handler that fails after the commit
 * reports that record as the batch's first failure, so that Lambda hands it over again; the
 * second time it goes through. Nothing is lost, nothing after it is skipped.
 */
describe('event dispatcher function', () => {
  const seen: string[] = [];
  let failOnce = true;

  beforeEach(() => {
    vi.resetModules();
    vi.stubEnv('TABLE_NAME', 'registry');
    vi.stubEnv('BUCKET_NAME', 'blobs');
    vi.doMock('../../registry/app.js', () => ({
      createApp: () => ({
        logger: { info() {}, warn() {}, error() {} },
        streamHandlers: async () => [
          async (record: { eventId: string }) => {
            if (record.eventId === 'b' && failOnce) {
              failOnce = false;
              throw new Error('EventBridge unavailable');
            }
            seen.push(record.eventId);
          },
        ],
      }),
    }));
  });
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.doUnmock('../../registry/app.js');
  });

  const record = (id: string, sequence: string) => ({
    eventID: id,
    eventName: 'INSERT' as const,
    dynamodb: {
      Keys: { PK: { S: 'REPO#a' }, SK: { S: `MANIFEST#${id}` } },
      NewImage: { pushedAt: { N: '1' } },
      SequenceNumber: sequence,
      ApproximateCreationDateTime: 1,
    },
  });

  it('reports the failing record, and handles it and the rest when Lambda hands them over again', async () => {
    const { handler } = await import('../../functions/event-dispatcher.js');
    const batch = { Records: [record('a', '1'), record('b', '2'), record('c', '3')] } as unknown as DynamoDBStreamEvent;
    expect(await handler(batch)).toEqual({ batchItemFailures: [{ itemIdentifier: '2' }] });
    expect(seen).toEqual(['a']);
    // Lambda retries from the reported record on.
    const retry = { Records: batch.Records.slice(1) } as DynamoDBStreamEvent;
    expect(await handler(retry)).toEqual({ batchItemFailures: [] });
    expect(seen).toEqual(['a', 'b', 'c']);
  });
});
