import { UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { keys } from './keys.js';

/** Pull counters live a day: long enough for the stream to carry them, short enough to cost nothing. */
const PULL_COUNT_SECONDS = 24 * 3600;

/** One counter item per repository, tag and minute; each increment's stream record is a pull event. */
export class PullCounts {
  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async add(minute: string, repository: string, tag: string, pulls: number): Promise<void> {
    await this.dynamo.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.pullCount(minute, repository, tag),
        UpdateExpression: 'SET #repository = :repository, #tag = :tag, #minute = :minute, expiresAt = :expires ADD pulls :pulls',
        ExpressionAttributeNames: { '#repository': 'repository', '#tag': 'tag', '#minute': 'minute' },
        ExpressionAttributeValues: {
          ':repository': repository,
          ':tag': tag,
          ':minute': minute,
          ':pulls': pulls,
          ':expires': Math.floor(Date.now() / 1000) + PULL_COUNT_SECONDS,
        },
      }),
    );
  }
}
