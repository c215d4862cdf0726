import { BatchGetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

const BATCH_GET_LIMIT = 100;

type BatchGetResult = {
  Responses?: Record<string, Record<string, unknown>[]>;
  UnprocessedKeys?: Record<string, { Keys?: Record<string, unknown>[] }>;
};

/** The items that exist among the keyed ones, read consistently, in no particular order. */
export async function existingItems(
  dynamo: DynamoDBDocumentClient,
  tableName: string,
  itemKeys: readonly Record<string, string>[],
  projection: { ProjectionExpression?: string; ExpressionAttributeNames?: Record<string, string> } = {},
): Promise<Record<string, unknown>[]> {
  const found: Record<string, unknown>[] = [];
  for (let start = 0; start < itemKeys.length; start += BATCH_GET_LIMIT) {
    let pending: Record<string, unknown>[] | undefined = itemKeys.slice(start, start + BATCH_GET_LIMIT);
    while (pending && pending.length > 0) {
      const result: BatchGetResult = await dynamo.send(
        new BatchGetCommand({ RequestItems: { [tableName]: { Keys: pending, ConsistentRead: true, ...projection } } }),
      );
      found.push(...(result.Responses?.[tableName] ?? []));
      pending = result.UnprocessedKeys?.[tableName]?.Keys;
    }
  }
  return found;
}
