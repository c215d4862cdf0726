import { describe, expect, it } from 'vitest';
import { deletionOf, eventsOf } from '../../../../registry/services/events/registry-event.js';
import { plainStreamRecord } from '../../../../registry/storage/table-stream.js';
import { eventBridgeEntries } from '../../../../registry/services/events/event-bridge.js';

const at = Date.parse('2026-01-02T03:04:00Z');
const manifestKeys = { PK: 'REPO#team-a/app', SK: 'MANIFEST#sha256:aa' };

describe('eventsOf', () => {
  it('makes one push event of a manifest item a push wrote, with its tags and actor', () => {
    const events = eventsOf({
      eventId: 'e1',
      eventName: 'INSERT',
      keys: manifestKeys,
      newImage: {
        ...manifestKeys,
        pushedAt: at + 1234,
        mediaType: 'm',
        size: 10,
        pushedTags: ['v1', 'latest'],
        pushedBy: 'alice',
        subject: 'sha256:bb',
      },
      approximateCreationTime: at,
    });
    expect(events).toEqual([
      expect.objectContaining({
        id: 'e1',
        kind: 'push',
        type: 'manifest.pushed',
        repository: 'team-a/app',
        digest: 'sha256:aa',
        tags: ['v1', 'latest'],
        actor: 'alice',
        subject: 'sha256:bb',
        time: new Date(at + 1234).toISOString(),
      }),
    ]);
    const entries = eventBridgeEntries(events[0]!, 'default');
    expect(entries.map((entry) => JSON.parse(entry.Detail))).toEqual([
      expect.objectContaining({
        'action-type': 'PUSH',
        result: 'SUCCESS',
        'repository-name': 'team-a/app',
        'image-digest': 'sha256:aa',
        'image-tag': 'v1',
        'event-id': 'e1:v1',
      }),
      expect.objectContaining({ 'image-tag': 'latest', 'event-id': 'e1:latest' }),
    ]);
    expect(entries[0]).toMatchObject({ Source: 'serverless-oci-registry', DetailType: 'ECR Image Action', EventBusName: 'default' });
  });

  it('ignores manifest updates that are not pushes (an index touching its child) and items that are not events', () => {
    const image = { ...manifestKeys, pushedAt: at };
    expect(
      eventsOf({
        eventId: 'e',
        eventName: 'MODIFY',
        keys: manifestKeys,
        oldImage: image,
        newImage: { ...image, referencedAt: at + 5 },
        approximateCreationTime: at,
      }),
    ).toEqual([]);
    expect(
      eventsOf({ eventId: 'e', eventName: 'INSERT', keys: { PK: 'BLOB#sha256:aa', SK: 'BLOB' }, newImage: {}, approximateCreationTime: at }),
    ).toEqual([]);
    expect(eventsOf({ eventId: 'e', eventName: 'INSERT', keys: { PK: 'REPO#a', SK: 'TAG#v1' }, newImage: {}, approximateCreationTime: at })).toEqual(
      [],
    );
  });

  it('makes delete events of removed tags and manifests, and cache events of pulled-through manifests', () => {
    expect(
      eventsOf({
        eventId: 't',
        eventName: 'REMOVE',
        keys: { PK: 'REPO#a', SK: 'TAG#v1' },
        oldImage: { digest: 'sha256:aa' },
        approximateCreationTime: at,
      }),
    ).toEqual([expect.objectContaining({ kind: 'delete', type: 'tag.deleted', repository: 'a', tags: ['v1'], digest: 'sha256:aa' })]);
    expect(eventsOf({ eventId: 'm', eventName: 'REMOVE', keys: manifestKeys, oldImage: { mediaType: 'm' }, approximateCreationTime: at })).toEqual([
      expect.objectContaining({ kind: 'delete', type: 'manifest.deleted', digest: 'sha256:aa', mediaType: 'm' }),
    ]);
    expect(
      eventsOf({
        eventId: 'c',
        eventName: 'INSERT',
        keys: manifestKeys,
        newImage: { pushedAt: at, cachedFrom: 'docker.io' },
        approximateCreationTime: at,
      })[0],
    ).toMatchObject({
      kind: 'push',
      type: 'manifest.cached',
      cachedFrom: 'docker.io',
    });
  });

  it('makes a pull event of the pulls a counter record added', () => {
    const keys = { PK: 'PULLS#2026-01-02T03:04', SK: 'PULLS#a:v1' };
    const item = { ...keys, repository: 'a', tag: 'v1', minute: '2026-01-02T03:04' };
    expect(
      eventsOf({
        eventId: 'p',
        eventName: 'MODIFY',
        keys,
        oldImage: { ...item, pulls: 3 },
        newImage: { ...item, pulls: 10 },
        approximateCreationTime: at,
      }),
    ).toEqual([expect.objectContaining({ kind: 'pull', type: 'pull.counted', repository: 'a', tags: ['v1'], pulls: 7, minute: '2026-01-02T03:04' })]);
  });

  it('says a TTL deletion is an expiry (the record names the DynamoDB service), and looks for no marker for it', () => {
    const raw = {
      eventID: 'e9',
      eventName: 'REMOVE',
      userIdentity: { type: 'Service', principalId: 'dynamodb.amazonaws.com' },
      dynamodb: { Keys: { PK: { S: 'REPO#team-a/app' }, SK: { S: 'TAG#v1' } }, OldImage: { digest: { S: 'sha256:aa' }, updatedAt: { N: '5' } } },
    };
    const expired = plainStreamRecord(raw);
    expect(eventsOf(expired)).toEqual([expect.objectContaining({ type: 'tag.deleted', reason: 'expiry', actor: 'registry:expiry' })]);
    expect(deletionOf(expired)).toBeUndefined();
    // The same delete by anyone else: no reason in the record, its marker is looked up.
    const { userIdentity: _, ...byClient } = raw;
    expect(eventsOf(plainStreamRecord(byClient))[0]).not.toHaveProperty('reason');
    expect(deletionOf(plainStreamRecord(byClient))).toEqual({ repository: 'team-a/app', sortKey: 'TAG#v1', writtenAt: 5 });
  });

  it('finds the marker of manifest and tag deletions only, by the deleted item’s key and write time', () => {
    const removed = (keys: Record<string, string>, oldImage: Record<string, unknown>) =>
      ({ eventId: 'e', eventName: 'REMOVE', keys, oldImage, approximateCreationTime: at }) as const;
    expect(deletionOf(removed(manifestKeys, { pushedAt: 7, updatedAt: 9 }))).toEqual({
      repository: 'team-a/app',
      sortKey: manifestKeys.SK,
      writtenAt: 7,
    });
    expect(deletionOf(removed({ PK: 'REPO#team-a/app', SK: 'LINK#sha256:aa' }, {}))).toBeUndefined();
    expect(deletionOf(removed({ PK: 'DELETED#team-a/app', SK: manifestKeys.SK }, {}))).toBeUndefined();
    expect(deletionOf({ ...removed(manifestKeys, {}), eventName: 'MODIFY' })).toBeUndefined();
  });
});
