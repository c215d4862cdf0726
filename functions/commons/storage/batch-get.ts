import { BatchGetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

const BATCH_GET_LIMIT = 100;

/** Which of the keyed items exist, answered as the values of `attribute` of those found. */
export async function existingValues(
  dynamo: DynamoDBDocumentClient,
  tableName: string,
  itemKeys: readonly Record<string, string>[],
  attribute: string,
): Promise<Set<string>> {
  const found = new Set<string>();
  for (let start = 0; start < itemKeys.length; start += BATCH_GET_LIMIT) {
    let pending: Record<string, unknown>[] | undefined = itemKeys.slice(start, start + BATCH_GET_LIMIT);
    while (pending && pending.length > 0) {
      const result: { Responses?: Record<string, Record<string, unknown>[]>; UnprocessedKeys?: Record<string, { Keys?: Record<string, unknown>[] }> } =
        await dynamo.send(
          new BatchGetCommand({
            RequestItems: { [tableName]: { Keys: pending, ConsistentRead: true, ProjectionExpression: '#value', ExpressionAttributeNames: { '#value': attribute } } },
          }),
        );
      for (const item of result.Responses?.[tableName] ?? []) found.add(item[attribute] as string);
      pending = result.UnprocessedKeys?.[tableName]?.Keys;
    }
  }
  return found;
}
