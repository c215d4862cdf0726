import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

export interface GetItemOptions {
  /**
   * For reads of content-addressed items that answer pulls (docs/storage.md, "Consistency"):
   * an eventually consistent read first, at half the cost, and a strongly consistent one only
   * on a miss, so that an item written a moment ago is never answered as absent.
   */
  eventual?: boolean;
  projection?: { ProjectionExpression?: string; ExpressionAttributeNames?: Record<string, string> };
}

/** One item by key; strongly consistent unless `eventual`. */
export async function getItem(
  dynamo: DynamoDBDocumentClient,
  tableName: string,
  key: Record<string, string>,
  options: GetItemOptions = {},
): Promise<Record<string, unknown> | undefined> {
  const read = async (consistent: boolean) =>
    (await dynamo.send(new GetCommand({ TableName: tableName, Key: key, ConsistentRead: consistent, ...options.projection }))).Item;
  return (options.eventual ? await read(false) : undefined) ?? read(true);
}
