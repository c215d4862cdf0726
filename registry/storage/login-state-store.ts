import { DeleteCommand, GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { existingItems } from './batch-get.js';
import { isConditionFailure } from './dynamo-errors.js';
import { keys } from './keys.js';

/** Failed logins counted under one key: how many, and when the last one was (epoch ms). */
export interface FailureCount {
  failures: number;
  lastFailureAt: number;
}

/** What a password login needs to know before it checks the password. */
export interface LoginState {
  /** Failures of this name from this source. */
  user?: FailureCount;
  /** Failures from this source, whatever the name. */
  source?: FailureCount;
  /** The name's session generation: refresh tokens of an earlier one are void. */
  generation: number;
}

/**
 * Per-login state the token endpoint keeps across Lambda instances (docs/logins.md): failed
 * login counters, which expire through TTL, and each user's session generation, which an admin
 * bumps to void every refresh token issued before ("sign out everywhere").
 */
export class LoginStateStore {
  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** Everything about a login attempt in one BatchGetItem. */
  async read(username: string, source: string): Promise<LoginState> {
    const userKey = keys.userLoginFailures(username, source);
    const sourceKey = keys.sourceLoginFailures(source);
    const sessionsKey = keys.userSessions(username);
    const items = await existingItems(this.dynamo, this.tableName, [userKey, sourceKey, sessionsKey]);
    const find = (key: { PK: string; SK: string }) => items.find((item) => item.PK === key.PK && item.SK === key.SK);
    return {
      user: failureCount(find(userKey)),
      source: failureCount(find(sourceKey)),
      generation: generationOf(find(sessionsKey)),
    };
  }

  async generation(username: string): Promise<number> {
    const { Item } = await this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.userSessions(username), ConsistentRead: true }));
    return generationOf(Item);
  }

  /** Counts a failed login against the name from this source and against the source. */
  async recordFailure(username: string, source: string, at: number, expiresAt: number): Promise<void> {
    await Promise.all([
      this.countFailure(keys.userLoginFailures(username, source), at, expiresAt),
      this.countFailure(keys.sourceLoginFailures(source), at, expiresAt),
    ]);
  }

  /** A successful login forgets the name's failures from that source (not the source's own). */
  async clearUserFailures(username: string, source: string): Promise<void> {
    await this.dynamo.send(new DeleteCommand({ TableName: this.tableName, Key: keys.userLoginFailures(username, source) }));
  }

  /** Voids every refresh token the user holds; answers the new generation. */
  async signOut(username: string): Promise<number> {
    const { Attributes } = await this.dynamo.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.userSessions(username),
        UpdateExpression: 'ADD generation :one SET signedOutAt = :now',
        ExpressionAttributeValues: { ':one': 1, ':now': Date.now() },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    return generationOf(Attributes);
  }

  /** Adds one to a live counter; a missing or expired one (TTL deletion lags) starts again at one. */
  private async countFailure(key: { PK: string; SK: string }, at: number, expiresAt: number): Promise<void> {
    try {
      await this.dynamo.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key,
          UpdateExpression: 'ADD failures :one SET lastFailureAt = :at, expiresAt = :expiresAt',
          ConditionExpression: 'expiresAt > :nowSeconds',
          ExpressionAttributeValues: { ':one': 1, ':at': at, ':expiresAt': expiresAt, ':nowSeconds': Math.floor(at / 1000) },
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      await this.dynamo.send(new PutCommand({ TableName: this.tableName, Item: { ...key, failures: 1, lastFailureAt: at, expiresAt } }));
    }
  }
}

function failureCount(item: Record<string, unknown> | undefined): FailureCount | undefined {
  if (!item || Number(item.expiresAt) * 1000 <= Date.now()) return undefined;
  return { failures: Number(item.failures) || 0, lastFailureAt: Number(item.lastFailureAt) || 0 };
}

function generationOf(item: Record<string, unknown> | undefined): number {
  return Number(item?.generation ?? 0) || 0;
}
