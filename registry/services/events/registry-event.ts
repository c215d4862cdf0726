import { MANIFEST_PREFIX, PULL_COUNT_PREFIX, TAG_PREFIX, repositoryOfPartition } from '../../storage/keys.js';
import { EXPIRY_DELETION, type DeletionReason } from '../../storage/deletion-markers.js';
import type { StreamRecord } from './stream-record.js';

/** What webhook subscriptions choose among (`--events push,delete,pull`). */
export const EVENT_KINDS = ['push', 'delete', 'pull'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/**
 * One committed change as the registry reports it (docs/events.md), derived from one stream
 * record: at least once, with `id` stable across redeliveries so that receivers can dedupe.
 */
export interface RegistryEvent {
  /** The stream record's eventID: unique per change, the same on every redelivery. */
  id: string;
  kind: EventKind;
  /**
   * `manifest.pushed`, `manifest.cached` (pull-through content stored, `cachedFrom` set),
   * `manifest.deleted`, `tag.deleted`, `pull.counted`.
   */
  type: 'manifest.pushed' | 'manifest.cached' | 'manifest.deleted' | 'tag.deleted' | 'pull.counted';
  /** When the change was committed (ISO 8601). */
  time: string;
  repository: string;
  digest?: string;
  /** push: the tags the push set (none for a push by digest); tag.deleted: the tag; pull: the tag pulled. */
  tags: string[];
  mediaType?: string;
  size?: number;
  artifactType?: string;
  subject?: string;
  /**
   * Who pushed or deleted: a user or `robot$<name>` (absent in open mode), or
   * `registry:retention` / `registry:expiry`; from the deletion's marker for a delete.
   */
  actor?: string;
  /** delete: why it went; absent when its marker was not found (docs/events.md). */
  reason?: DeletionReason;
  /** The upstream a pull-through copy came from. */
  cachedFrom?: string;
  /** pull.counted: pulls added in this record, and the minute they fall in. */
  pulls?: number;
  minute?: string;
}

/**
 * The registry events of one stream record: a manifest item written by a push (its `pushedAt`
 * changed: child touches and other updates are not pushes), a manifest or tag item removed, a
 * pull counter incremented. Every other item (blobs, links, sessions, counters, rules) yields
 * nothing. Pure: the same record always gives the same events, with the same ids.
 */
export function eventsOf(record: StreamRecord): RegistryEvent[] {
  const partition = String(record.keys.PK ?? '');
  const sort = String(record.keys.SK ?? '');
  const time = new Date(record.approximateCreationTime).toISOString();
  if (sort.startsWith(PULL_COUNT_PREFIX)) return pullEvents(record, partition, sort, time);
  const repository = repositoryOfPartition(partition);
  if (repository === undefined) return [];
  const base = { id: record.eventId, time, repository, ...(record.expired ? EXPIRY_DELETION : {}) };
  if (sort.startsWith(MANIFEST_PREFIX)) {
    const digest = sort.slice(MANIFEST_PREFIX.length);
    if (record.eventName === 'REMOVE') {
      return [{ ...base, kind: 'delete', type: 'manifest.deleted', digest, tags: [], ...describe(record.oldImage) }];
    }
    const item = record.newImage ?? {};
    if (item.pushedAt === undefined || item.pushedAt === record.oldImage?.pushedAt) return [];
    const cachedFrom = typeof item.cachedFrom === 'string' ? item.cachedFrom : undefined;
    return [
      {
        ...base,
        // The push's own clock, to the millisecond (the stream's time is rounded to the second).
        ...(typeof item.pushedAt === 'number' ? { time: new Date(item.pushedAt).toISOString() } : {}),
        kind: 'push',
        type: cachedFrom ? 'manifest.cached' : 'manifest.pushed',
        digest,
        tags: stringsOf(item.pushedTags),
        ...describe(item),
        ...(typeof item.pushedBy === 'string' ? { actor: item.pushedBy } : {}),
        ...(cachedFrom ? { cachedFrom } : {}),
      },
    ];
  }
  if (sort.startsWith(TAG_PREFIX) && record.eventName === 'REMOVE') {
    const old = record.oldImage ?? {};
    return [
      {
        ...base,
        kind: 'delete',
        type: 'tag.deleted',
        tags: [sort.slice(TAG_PREFIX.length)],
        ...(typeof old.digest === 'string' ? { digest: old.digest } : {}),
        ...(typeof old.mediaType === 'string' ? { mediaType: old.mediaType } : {}),
      },
    ];
  }
  return [];
}

/** A pull counter (PullCounts) went up: one event with the pulls this record added. */
function pullEvents(record: StreamRecord, partition: string, sort: string, time: string): RegistryEvent[] {
  if (record.eventName === 'REMOVE') return [];
  const item = record.newImage ?? {};
  const pulls = Number(item.pulls ?? 0) - Number(record.oldImage?.pulls ?? 0);
  if (!(pulls > 0) || typeof item.repository !== 'string') return [];
  const tag = typeof item.tag === 'string' ? item.tag : undefined;
  return [
    {
      id: record.eventId,
      kind: 'pull',
      type: 'pull.counted',
      time,
      repository: item.repository,
      tags: tag ? [tag] : [],
      ...(typeof item.digest === 'string' ? { digest: item.digest } : {}),
      pulls,
      minute: String(item.minute ?? `${partition}/${sort}`),
    },
  ];
}

function describe(item: Record<string, unknown> | undefined): Pick<RegistryEvent, 'mediaType' | 'size' | 'artifactType' | 'subject'> {
  if (!item) return {};
  return {
    ...(typeof item.mediaType === 'string' ? { mediaType: item.mediaType } : {}),
    ...(typeof item.size === 'number' ? { size: item.size } : {}),
    ...(typeof item.artifactType === 'string' ? { artifactType: item.artifactType } : {}),
    ...(typeof item.subject === 'string' ? { subject: item.subject } : {}),
  };
}

/**
 * Where the marker of a manifest or tag deletion is (storage/deletion-markers.ts): the
 * repository, the item's sort key and when the item deleted was written (a manifest's
 * `pushedAt`, a tag's `updatedAt`); undefined for every other record, and for TTL deletions,
 * which say why themselves.
 */
export function deletionOf(record: StreamRecord): { repository: string; sortKey: string; writtenAt?: number } | undefined {
  if (record.eventName !== 'REMOVE' || record.expired) return undefined;
  const repository = repositoryOfPartition(String(record.keys.PK ?? ''));
  const sortKey = String(record.keys.SK ?? '');
  if (repository === undefined || !(sortKey.startsWith(MANIFEST_PREFIX) || sortKey.startsWith(TAG_PREFIX))) return undefined;
  const written = record.oldImage?.[sortKey.startsWith(TAG_PREFIX) ? 'updatedAt' : 'pushedAt'];
  return { repository, sortKey, ...(typeof written === 'number' ? { writtenAt: written } : {}) };
}

function stringsOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((entry): entry is string => typeof entry === 'string');
  if (value instanceof Set) return [...value].filter((entry): entry is string => typeof entry === 'string');
  return [];
}
