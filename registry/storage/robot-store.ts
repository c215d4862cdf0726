import { GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Grant } from '../model/auth/access-model.js';
import { ROBOT_PARTITION, keys } from './keys.js';
import { queryItems } from './query-items.js';
import { isConditionFailure } from './dynamo-errors.js';

/** A robot account for CI: a name, a hashed secret, its own grants and an expiry. */
export interface RobotAccount {
  name: string;
  description?: string;
  grants: Grant[];
  /** Epoch seconds after which the robot can no longer log in. */
  validUntil: number;
  revoked: boolean;
  createdAt: number;
}

export interface StoredRobot extends RobotAccount {
  secretHash: string;
}

export class RobotStore {
  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** Answers false when a robot of that name exists already. */
  async create(robot: StoredRobot): Promise<boolean> {
    try {
      await this.dynamo.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.robot(robot.name), ...robot },
          ConditionExpression: 'attribute_not_exists(PK)',
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async get(name: string): Promise<StoredRobot | undefined> {
    const { Item } = await this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.robot(name), ConsistentRead: true }));
    if (!Item) return undefined;
    const { PK: _pk, SK: _sk, ...robot } = Item;
    return robot as StoredRobot;
  }

  /** Every robot, without secret hashes. */
  async list(): Promise<RobotAccount[]> {
    const robots: RobotAccount[] = [];
    for (const item of await queryItems(this.dynamo, this.tableName, ROBOT_PARTITION)) {
      const { PK: _pk, SK: _sk, secretHash: _secret, ...robot } = item;
      robots.push(robot as unknown as RobotAccount);
    }
    return robots;
  }

  /** Answers false when there is no such robot. */
  async revoke(name: string): Promise<boolean> {
    try {
      await this.dynamo.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.robot(name),
          UpdateExpression: 'SET revoked = :true',
          ConditionExpression: 'attribute_exists(PK)',
          ExpressionAttributeValues: { ':true': true },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }
}
