import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { TransactionItem } from './dynamo-errors.js';
import { keys } from './keys.js';

/**
 * Why a manifest or tag went (docs/events.md): `retention` (a retention rule, in the maintenance
 * run or `npm run policy`), `request` (a client's DELETE), `expiry` (DynamoDB TTL).
 */
export type DeletionReason = 'retention' | 'request' | 'expiry';

export interface DeletionMarker {
  reason: DeletionReason;
  /** Who: the client's token subject (a user or `robot$<name>`, absent in open mode), or `registry:<reason>`. */
  actor?: string;
}

export const RETENTION_DELETION: DeletionMarker = { reason: 'retention', actor: 'registry:retention' };
export const EXPIRY_DELETION: DeletionMarker = { reason: 'expiry', actor: 'registry:expiry' };

/** Longer than the stream keeps a record (24 h) and the dispatcher retries one (a day). */
const MARKER_SECONDS = 2 * 24 * 3600;

/**
 * The stream's REMOVE record says what went, not why or by whom, and a Delete carries no
 * attributes. So each delete of a manifest or tag puts a small marker item (`DELETED#<repo>`,
 * the deleted item's sort key) in the delete's own transaction: no call more, and the marker
 * exists exactly when the delete committed. The dispatcher reads it for the REMOVE record.
 */
export function deletionMarkerPut(tableName: string, repository: string, sortKey: string, marker: DeletionMarker, now = Date.now()): TransactionItem {
  return {
    Put: {
      TableName: tableName,
      Item: {
        ...keys.deletionMarker(repository, sortKey),
        reason: marker.reason,
        ...(marker.actor ? { actor: marker.actor } : {}),
        deletedAt: now,
        expiresAt: Math.floor(now / 1000) + MARKER_SECONDS,
      },
    },
  };
}

export class DeletionMarkers {
  constructor(
    private readonly dynamo: Pick<DynamoDBDocumentClient, 'send'>,
    private readonly tableName: string,
  ) {}

  /**
   * The marker of the delete that removed the item `sortKey` of `repository` last written at
   * `writtenAt` (a manifest's pushedAt, a tag's updatedAt). A marker older than that item is a
   * deletion of an earlier item under the same key, not this one's. Consistent: the marker
   * committed with the delete the record reports.
   */
  async find(repository: string, sortKey: string, writtenAt: number | undefined): Promise<DeletionMarker | undefined> {
    const { Item } = await this.dynamo.send(
      new GetCommand({ TableName: this.tableName, Key: keys.deletionMarker(repository, sortKey), ConsistentRead: true }),
    );
    if (!Item || (writtenAt !== undefined && Number(Item.deletedAt) < writtenAt)) return undefined;
    return { reason: Item.reason as DeletionReason, ...(typeof Item.actor === 'string' ? { actor: Item.actor } : {}) };
  }
}
