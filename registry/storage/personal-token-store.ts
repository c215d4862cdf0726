import { GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Grant } from '../model/auth/access-model.js';
import { isConditionFailure } from './dynamo-errors.js';
import { PERSONAL_TOKEN_PREFIX, keys, userPartition } from './keys.js';
import { queryItems } from './query-items.js';

/** A user's personal access token, as listed: never its secret or the secret's hash. */
export interface PersonalToken {
  /** Random, not secret: it is part of the token (`rpat_<id>_<secret>`) and names the item. */
  id: string;
  /** The owner's name as the user pool has it. */
  username: string;
  /** The owner's label for it, unique among the owner's live tokens. */
  name: string;
  /** Epoch ms, like every other createdAt in the table. */
  createdAt: number;
  /** Epoch seconds after which it no longer logs in, as a robot's `validUntil`; absent: no expiry. */
  validUntil?: number;
  /** Epoch ms of a recent login with it, written at most once an hour (PersonalTokenStore.recordUse). */
  lastUsedAt?: number;
  /** What it may do at most, within its owner's rights; absent: all of them. */
  grants?: Grant[];
  revoked: boolean;
  revokedAt?: number;
}

export interface StoredPersonalToken extends PersonalToken {
  secretHash: string;
}

/** Expired tokens stay listed this long, then DynamoDB's TTL removes them. */
const KEEP_EXPIRED_SECONDS = 30 * 24 * 3600;

/**
 * Personal access tokens (docs/logins.md), one item each in the owner's `USER#` partition: a
 * login reads its token with one strongly consistent GetItem (the owner's name and the id from
 * the token), and a user's tokens are one Query.
 */
export class PersonalTokenStore {
  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** Answers false when a token of that id exists already (ids are random: only a bug repeats one). */
  async create(token: StoredPersonalToken): Promise<boolean> {
    const ttl = token.validUntil === undefined ? {} : { expiresAt: token.validUntil + KEEP_EXPIRED_SECONDS };
    try {
      await this.dynamo.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.personalToken(token.username, token.id), ...token, ...ttl },
          ConditionExpression: 'attribute_not_exists(PK)',
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /** Strongly consistent: a revocation a moment ago is seen. */
  async get(username: string, id: string): Promise<StoredPersonalToken | undefined> {
    const { Item } = await this.dynamo.send(
      new GetCommand({ TableName: this.tableName, Key: keys.personalToken(username, id), ConsistentRead: true }),
    );
    if (!Item) return undefined;
    const { PK: _pk, SK: _sk, expiresAt: _ttl, ...token } = Item;
    return token as StoredPersonalToken;
  }

  /** Every token of the user, revoked and expired ones too, without hashes. */
  async list(username: string): Promise<PersonalToken[]> {
    const items = await queryItems(this.dynamo, this.tableName, userPartition(username), { prefix: PERSONAL_TOKEN_PREFIX });
    return items.map(({ PK: _pk, SK: _sk, expiresAt: _ttl, secretHash: _hash, ...token }) => token as unknown as PersonalToken);
  }

  /** Answers false when the user has no token of that id. */
  async revoke(username: string, id: string, at = Date.now()): Promise<boolean> {
    try {
      await this.dynamo.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.personalToken(username, id),
          UpdateExpression: 'SET revoked = :true, revokedAt = if_not_exists(revokedAt, :at)',
          ConditionExpression: 'attribute_exists(PK)',
          ExpressionAttributeValues: { ':true': true, ':at': at },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /** Revokes every token of the user not revoked yet; answers how many. */
  async revokeAll(username: string): Promise<number> {
    const live = (await this.list(username)).filter((token) => !token.revoked);
    await Promise.all(live.map((token) => this.revoke(username, token.id)));
    return live.length;
  }

  /**
   * Notes a login, unless one since `notBefore` (epoch ms) is noted already: the condition keeps
   * concurrent logins on several instances from writing more than one of them.
   */
  async recordUse(username: string, id: string, at: number, notBefore: number): Promise<void> {
    try {
      await this.dynamo.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.personalToken(username, id),
          UpdateExpression: 'SET lastUsedAt = :at',
          ConditionExpression: 'attribute_exists(PK) AND (attribute_not_exists(lastUsedAt) OR lastUsedAt < :notBefore)',
          ExpressionAttributeValues: { ':at': at, ':notBefore': notBefore },
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }
}
