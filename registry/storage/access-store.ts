import { DeleteCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Action, Grant } from '../model/auth/access-model.js';
import { keys, ACCESS_PARTITION } from './keys.js';
import { queryItems } from './query-items.js';

export interface GroupGrant extends Grant {
  group: string;
}

export interface AccessPolicy {
  groupGrants: GroupGrant[];
  /** Patterns anyone may pull from without logging in. */
  publicPatterns: string[];
}

/**
 * Who may do what, as data: grants of actions on repository patterns to Cognito groups, and
 * the patterns open to anonymous pulls. One small partition, read whole per token request.
 */
export class AccessStore {
  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async read(): Promise<AccessPolicy> {
    const policy: AccessPolicy = { groupGrants: [], publicPatterns: [] };
    for (const item of await queryItems(this.dynamo, this.tableName, ACCESS_PARTITION)) {
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
  }

  async revoke(group: string, pattern: string): Promise<void> {
    await this.dynamo.send(new DeleteCommand({ TableName: this.tableName, Key: keys.groupGrant(group, pattern) }));
  }

  async setPublic(pattern: string, open: boolean): Promise<void> {
    if (open) {
      await this.dynamo.send(
        new PutCommand({ TableName: this.tableName, Item: { ...keys.publicPattern(pattern), kind: 'public', pattern, updatedAt: Date.now() } }),
      );
    } else {
      await this.dynamo.send(new DeleteCommand({ TableName: this.tableName, Key: keys.publicPattern(pattern) }));
    }
  }
}
