import { GetCommand, PutCommand, QueryCommand, UpdateCommand, DeleteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { WEBHOOK_PARTITION, keys } from './keys.js';
import { isConditionFailure } from './dynamo-errors.js';
import { queryItems } from './query-items.js';

/** A webhook subscription (docs/events.md); its secret is kept elsewhere (WebhookSecrets), never here. */
export interface WebhookSubscription {
  name: string;
  url: string;
  /** Which kinds of event it gets: `push`, `delete`, `pull`. */
  events: string[];
  /** A repository pattern as grants have them: `*`, `team-a/*`, `team-a/app`. */
  pattern: string;
  /** The admin let it reach private, loopback and link-local addresses. */
  allowPrivate: boolean;
  createdAt: number;
}

export type DeliveryStatus = 'pending' | 'retrying' | 'delivered' | 'failed';

/** One event's delivery to one webhook, over all its attempts. */
export interface WebhookDelivery {
  name: string;
  /** Sort key: `<event time>#<delivery id>`. */
  key: string;
  deliveryId: string;
  eventId: string;
  eventType: string;
  /** The signed body, kept so that a retry sends the same bytes. */
  body: string;
  status: DeliveryStatus;
  attempts: number;
  statusCode?: number;
  error?: string;
  latencyMs?: number;
  nextAttemptAt?: number;
  updatedAt: number;
}

/** How long deliveries are kept for `webhook deliveries` (they expire through TTL). */
const DELIVERY_DAYS = 7;

export class WebhookStore {
  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** Answers false when a webhook of that name exists. */
  async add(subscription: WebhookSubscription): Promise<boolean> {
    try {
      await this.dynamo.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.webhook(subscription.name), ...subscription },
          ConditionExpression: 'attribute_not_exists(PK)',
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async get(name: string): Promise<WebhookSubscription | undefined> {
    const { Item } = await this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.webhook(name), ConsistentRead: true }));
    return Item && subscriptionOf(Item);
  }

  async list(): Promise<WebhookSubscription[]> {
    return (await queryItems(this.dynamo, this.tableName, WEBHOOK_PARTITION)).map(subscriptionOf);
  }

  /** Answers false when there was no such webhook. Its deliveries expire on their own. */
  async remove(name: string): Promise<boolean> {
    try {
      await this.dynamo.send(new DeleteCommand({ TableName: this.tableName, Key: keys.webhook(name), ConditionExpression: 'attribute_exists(PK)' }));
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /**
   * Records a new delivery; answers false when it was recorded before (the stream redelivered
   * the record): the caller then leaves it to the attempts already under way.
   */
  async startDelivery(delivery: WebhookDelivery): Promise<boolean> {
    try {
      await this.dynamo.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.webhookDelivery(delivery.name, delivery.key), ...delivery, expiresAt: expiry(delivery.updatedAt) },
          ConditionExpression: 'attribute_not_exists(PK)',
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async getDelivery(name: string, key: string): Promise<WebhookDelivery | undefined> {
    const { Item } = await this.dynamo.send(
      new GetCommand({ TableName: this.tableName, Key: keys.webhookDelivery(name, key), ConsistentRead: true }),
    );
    return Item && deliveryOf(Item);
  }

  /** Records the outcome of an attempt. */
  async recordAttempt(
    name: string,
    key: string,
    outcome: Pick<WebhookDelivery, 'status' | 'attempts' | 'statusCode' | 'error' | 'latencyMs' | 'nextAttemptAt' | 'updatedAt'>,
  ): Promise<void> {
    const values = Object.entries(outcome).filter(([, value]) => value !== undefined);
    const cleared = (['statusCode', 'error', 'latencyMs', 'nextAttemptAt'] as const).filter((field) => outcome[field] === undefined);
    await this.dynamo.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.webhookDelivery(name, key),
        UpdateExpression: [
          `SET ${values.map(([field]) => `#${field} = :${field}`).join(', ')}`,
          ...(cleared.length > 0 ? [`REMOVE ${cleared.map((field) => `#${field}`).join(', ')}`] : []),
        ].join(' '),
        ExpressionAttributeNames: Object.fromEntries([...values.map(([field]) => field), ...cleared].map((field) => [`#${field}`, field])),
        ExpressionAttributeValues: Object.fromEntries(values.map(([field, value]) => [`:${field}`, value])),
      }),
    );
  }

  /** The newest deliveries first. */
  async listDeliveries(name: string, limit = 20): Promise<WebhookDelivery[]> {
    const { Items } = await this.dynamo.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: 'PK = :pk',
        ExpressionAttributeValues: { ':pk': keys.webhookDelivery(name, '').PK },
        ScanIndexForward: false,
        Limit: limit,
        ConsistentRead: true,
      }),
    );
    return (Items ?? []).map(deliveryOf);
  }
}

function expiry(now: number): number {
  return Math.floor(now / 1000) + DELIVERY_DAYS * 24 * 3600;
}

function subscriptionOf(item: Record<string, unknown>): WebhookSubscription {
  return {
    name: item.name as string,
    url: item.url as string,
    events: (item.events as string[] | undefined) ?? [],
    pattern: item.pattern as string,
    allowPrivate: item.allowPrivate === true,
    createdAt: item.createdAt as number,
  };
}

function deliveryOf(item: Record<string, unknown>): WebhookDelivery {
  const { PK: _pk, SK: _sk, expiresAt: _expires, ...delivery } = item;
  return delivery as unknown as WebhookDelivery;
}
