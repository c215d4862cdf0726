import { describe, expect, it } from 'vitest';
import { DeletionMarkers, deletionMarkerPut, RETENTION_DELETION } from '../../../registry/storage/deletion-markers.js';

/** The marker a delete puts in its own transaction, and how the dispatcher reads it back. */
describe('deletion markers', () => {
  const put = deletionMarkerPut('registry', 'team-a/app', 'TAG#v1', RETENTION_DELETION, 1_000_000);
  const item = (put as { Put: { Item: Record<string, unknown> } }).Put.Item;
  const markers = new DeletionMarkers({ send: async () => ({ Item: item }) } as never, 'registry');

  it('is one Put beside the deleted item’s partition, expiring after two days', () => {
    expect(item).toEqual({
      PK: 'DELETED#team-a/app',
      SK: 'TAG#v1',
      reason: 'retention',
      actor: 'registry:retention',
      deletedAt: 1_000_000,
      expiresAt: 1000 + 2 * 24 * 3600,
    });
  });

  it('answers for the item deleted, not for a later one written under the same key after it', async () => {
    expect(await markers.find('team-a/app', 'TAG#v1', 999_000)).toEqual({ reason: 'retention', actor: 'registry:retention' });
    // The tag was pushed again after this marker's delete: the marker is an earlier deletion's.
    expect(await markers.find('team-a/app', 'TAG#v1', 1_000_001)).toBeUndefined();
  });
});
