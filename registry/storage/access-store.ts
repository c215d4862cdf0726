import { DeleteCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Action, Grant } from '../model/auth/access-model.js';
import { keys, ACCESS_PARTITION } from './keys.js';
import { queryItems } from './query-items.js';
import { CachedRead } from './cached-read.js';

export interface GroupGrant extends Grant {
  group: string;
}

export interface AccessPolicy {
  groupGrants: GroupGrant[];
  /** Patterns anyone may pull from without logging in. */
  publicPatterns: string[];
}

/**
 * How long a warm instance answers token requests from the access policy it read. An access
 * token already carries its grants for its whole lifetime (minutes), so a grant revoked up to
 * this long ago still honoured by a new token changes little; docs/storage.md.
 */
export const ACCESS_POLICY_CACHE_MS = 5_000;

/**
 * Who may do what, as data: grants of actions on repository patterns to Cognito groups, and
 * the patterns open to anonymous pulls. One small partition, read whole: by token requests
 * (`readCached`) eventually consistent, at most once per ACCESS_POLICY_CACHE_MS per instance.
 */
export class AccessStore {
  private readonly cached: CachedRead<AccessPolicy>;

  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
    now: () => number = Date.now,
  ) {
    this.cached = new CachedRead(() => this.readPolicy(true), ACCESS_POLICY_CACHE_MS, now);
  }

  /**
   * The access policy as read at most ACCESS_POLICY_CACHE_MS ago, eventually consistent: what a
   * token request decides on (docs/storage.md, "Consistency"). Concurrent requests share one read.
   */
  readCached(): Promise<AccessPolicy> {
    return this.cached.get();
  }

  /** The access policy as stored now (strongly consistent): what the admin CLI lists. */
  read(): Promise<AccessPolicy> {
    return this.readPolicy(false);
  }

  private async readPolicy(eventual: boolean): Promise<AccessPolicy> {
    const policy: AccessPolicy = { groupGrants: [], publicPatterns: [] };
    for (const item of await queryItems(this.dynamo, this.tableName, ACCESS_PARTITION, { eventual })) {
      if (item.kind === 'group') {
        policy.groupGrants.push({ group: item.group as string, pattern: item.pattern as string, actions: item.actions as Action[] });
      } else if (item.kind === 'public') {
        policy.publicPatterns.push(item.pattern as string);
      }
    }
    return policy;
  }

  /** Replaces the actions a group has on a pattern. */
  async grant(group: string, pattern: string, actions: Action[]): Promise<void> {
    await this.dynamo.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { ...keys.groupGrant(group, pattern), kind: 'group', group, pattern, actions, updatedAt: Date.now() },
      }),
    );
    this.cached.clear();
  }

  async revoke(group: string, pattern: string): Promise<void> {
    await this.dynamo.send(new DeleteCommand({ TableName: this.tableName, Key: keys.groupGrant(group, pattern) }));
    this.cached.clear();
  }

  async setPublic(pattern: string, open: boolean): Promise<void> {
    if (open) {
      await this.dynamo.send(
        new PutCommand({ TableName: this.tableName, Item: { ...keys.publicPattern(pattern), kind: 'public', pattern, updatedAt: Date.now() } }),
      );
    } else {
      await this.dynamo.send(new DeleteCommand({ TableName: this.tableName, Key: keys.publicPattern(pattern) }));
    }
    this.cached.clear();
  }
}
