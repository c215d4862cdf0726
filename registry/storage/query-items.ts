import { QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

export interface QueryOptions {
  /** Only items whose sort key starts with this; every item of the partition when empty. */
  prefix?: string;
  projection?: { ProjectionExpression?: string; ExpressionAttributeNames?: Record<string, string> };
  /** Eventually consistent (half the read cost) where a slightly stale answer is safe; strongly by default. */
  eventual?: boolean;
}

/** Every item of a partition (or of one sort-key prefix in it), all pages. */
export async function queryItems(
  dynamo: DynamoDBDocumentClient,
  tableName: string,
  partition: string,
  options: QueryOptions = {},
): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await dynamo.send(
      new QueryCommand({
        TableName: tableName,
        ...keyCondition(partition, options.prefix ?? ''),
        ...options.projection,
        ExclusiveStartKey: startKey,
        ConsistentRead: !options.eventual,
      }),
    );
    // `page?`: a client mocked without an answer for Query (unit tests) reads as an empty partition.
    items.push(...(page?.Items ?? []));
    startKey = page?.LastEvaluatedKey;
  } while (startKey);
  return items;
}

/** An empty prefix means the whole partition: DynamoDB refuses `begins_with(SK, '')`. */
export function keyCondition(partition: string, prefix: string) {
  return prefix === ''
    ? { KeyConditionExpression: 'PK = :pk', ExpressionAttributeValues: { ':pk': partition } }
    : { KeyConditionExpression: 'PK = :pk AND begins_with(SK, :prefix)', ExpressionAttributeValues: { ':pk': partition, ':prefix': prefix } };
}
