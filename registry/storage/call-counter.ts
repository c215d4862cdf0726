import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';

/** DynamoDB operations that can report the capacity they consumed. */
const CAPACITY_OPERATIONS = new Set([
  'GetItem',
  'PutItem',
  'UpdateItem',
  'DeleteItem',
  'Query',
  'Scan',
  'BatchGetItem',
  'BatchWriteItem',
  'TransactWriteItems',
  'TransactGetItems',
]);

export interface CallCounts {
  /** Calls by `service.Operation` (e.g. `DynamoDB.GetItem`), one per request sent (SDK retries included). */
  calls: Record<string, number>;
  /** Capacity units DynamoDB reported, read and write together. */
  consumedCapacity: number;
}

/**
 * Counts the DynamoDB and S3 calls the registry makes, by operation, with the capacity
 * DynamoDB reports: an SDK middleware, off unless a counter is attached (createAwsClients),
 * for `npm run bench:calls` and for metrics. In AWS these calls are the latency and the bill.
 */
export class CallCounter {
  private counts: CallCounts = { calls: {}, consumedCapacity: 0 };

  attach(service: 'DynamoDB' | 'S3', client: DynamoDBClient | S3Client): void {
    const stack = (client as DynamoDBClient).middlewareStack;
    if (service === 'DynamoDB') {
      stack.add(
        (next, context) => async (args) => {
          const input = args.input as Record<string, unknown>;
          if (CAPACITY_OPERATIONS.has(operationOf(context)) && input.ReturnConsumedCapacity === undefined) input.ReturnConsumedCapacity = 'TOTAL';
          return next(args);
        },
        { step: 'initialize', name: 'registryCallCounterCapacity' },
      );
    }
    // Counted where a request is sent, once per attempt: presigning a URL never gets this far.
    stack.add(
      (next, context) => async (args) => {
        const key = `${service}.${operationOf(context)}`;
        this.counts.calls[key] = (this.counts.calls[key] ?? 0) + 1;
        const result = await next(args);
        this.counts.consumedCapacity += consumedUnits((result.output as { ConsumedCapacity?: unknown } | undefined)?.ConsumedCapacity);
        return result;
      },
      // Outside the deserializer, so that the parsed output (ConsumedCapacity) is there.
      { step: 'deserialize', priority: 'high', name: 'registryCallCounter' },
    );
  }

  /** The counts since the last take, which starts a new count. */
  take(): CallCounts {
    const counts = this.counts;
    this.counts = { calls: {}, consumedCapacity: 0 };
    return counts;
  }
}

function operationOf(context: unknown): string {
  return String((context as { commandName?: string }).commandName ?? 'unknown').replace(/Command$/, '');
}

function consumedUnits(capacity: unknown): number {
  const entries = Array.isArray(capacity) ? capacity : capacity ? [capacity] : [];
  return entries.reduce((sum: number, entry) => sum + (((entry as { CapacityUnits?: number }).CapacityUnits as number | undefined) ?? 0), 0);
}
