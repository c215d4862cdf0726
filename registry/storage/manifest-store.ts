import { randomUUID } from 'node:crypto';
import { DeleteCommand, GetCommand, QueryCommand, TransactWriteCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { CATALOG_PARTITION, MANIFEST_PREFIX, TAG_PREFIX, keys, objectKeys, referrerPrefix, repoPartition } from './keys.js';
import { ContendedError, failedConditionIndexes, isConditionFailure, retryingConflicts, type TransactionItem } from './dynamo-errors.js';
import { BlobGoneError, linkKeys, linkedRecords, type BlobIndex, type BlobRecord } from './blob-index.js';
import { GcEpoch } from './gc-epoch.js';
import { existingItems } from './batch-get.js';
import { getItem } from './get-item.js';
import { keyCondition, queryItems } from './query-items.js';
import type { BlobObjectStore } from './blob-object-store.js';
import { RulesChangedError } from './policy-store.js';
import { deletionMarkerPut, RETENTION_DELETION, type DeletionMarker } from './deletion-markers.js';

/**
 * Items max out at 400 KB. Manifests up to this size are kept inline in their item, leaving
 * room for the reference lists; larger ones go to S3.
 */
const INLINE_MANIFEST_LIMIT = 200 * 1024;
/**
 * Manifests up to this size are also kept in each tag item naming them, so that a GET by tag
 * is one read. Nearly every image manifest and index is smaller; a larger limit would make
 * every tag listing and retention run read more (a Query reads 1 MB a page).
 */
const TAG_INLINE_LIMIT = 4 * 1024;
/** What listings of tag items read: never the manifest bytes a tag carries. */
const TAG_PROJECTION = {
  ProjectionExpression: 'PK, SK, #tag, #digest, #updatedAt, pulledAt',
  ExpressionAttributeNames: { '#tag': 'tag', '#digest': 'digest', '#updatedAt': 'updatedAt' },
};
/** Referrer entries carry annotations up to this size for the referrers API. */
const REFERRER_ANNOTATIONS_LIMIT = 64 * 1024;
/** A referrers page holds at most this many descriptors, and stops adding them past this size. */
const REFERRERS_PAGE_ITEMS = 100;
const REFERRERS_PAGE_BYTES = 1024 * 1024;
/** A push starts again this often when GC runs keep beginning under it. */
const EPOCH_ATTEMPTS = 3;
/** An unlink starts again this often when pushes to the repository keep landing under it. */
const UNLINK_ATTEMPTS = 5;
/** Repositories whose `unlinks` counter a process remembers. */
const UNLINKS_CACHE_LIMIT = 10_000;
/** A delete by digest starts again this often when pushes keep changing the manifest under it. */
const DELETE_ATTEMPTS = 5;
/** DynamoDB transactions take at most 100 items. */
const TRANSACTION_LIMIT = 100;

export interface ManifestDescriptorInfo {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface NewManifest extends ManifestDescriptorInfo {
  bytes: Uint8Array;
  subject?: string;
  /** Blobs (config, layers) and child manifests it references, kept for garbage collection. */
  blobDigests: string[];
  childDigests: string[];
  /** Who pushed it (the caller's subject), for events and the audit; absent in open mode. */
  pushedBy?: string;
}

export interface StoredManifest {
  digest: string;
  mediaType: string;
  size: number;
  bytes: Uint8Array;
}

/** A tag as its item holds it; `checkedAt` and `pulledAt` only in pull-through cache repositories. */
export interface DescribedTag {
  digest: string;
  mediaType?: string;
  size?: number;
  bytes?: Uint8Array;
  /** When the upstream last confirmed the tag (ms). */
  checkedAt?: number;
  /** The last day (epochDay) it was pulled. */
  pulledAt?: number;
}

/** A tag as retention sees it: `pushedAt` is when a push last wrote it (the item's `updatedAt`). */
export interface TagRecord {
  tag: string;
  digest: string;
  pushedAt: number;
  /** In a pull-through cache repository: the epoch day it was last pulled (`--keep-days`). */
  pulledAt?: number;
}

/** A manifest without its bytes: what retention needs to know about it. */
export interface ManifestRecord {
  digest: string;
  mediaType: string;
  pushedAt: number;
  /** Last time an index push referenced it as a child. */
  referencedAt?: number;
  subject?: string;
  childDigests: string[];
  /** In a pull-through cache repository: the epoch day it was last cached or pulled (`--keep-days`). */
  pulledAt?: number;
}

export interface PutManifestOptions {
  /** The live records of the blobs the manifest references (`blobDigests`), as read to validate it. */
  blobs: readonly BlobRecord[];
  /** knownUnlinks() of the repository, taken before those records were read. */
  unlinks: number | undefined;
  /**
   * Tags that are immutable: each is written only if it is absent or already names this digest,
   * so that of racing pushes exactly one can create it. Otherwise TagConflictError, and nothing
   * is written.
   */
  immutableTags?: ReadonlySet<string>;
  /** Holds while the immutable rules the push applied are in force (PolicyStore); else RulesChangedError. */
  rulesCheck?: TransactionItem;
  /** One more write of the push's transaction, without a condition: its audit record (docs/audit-log.md). */
  alsoWrite?: TransactionItem;
}

/** What a manifest push reads, in one call: its blobs' links, its children, and what the caller adds. */
export interface PushReads {
  /** Of the manifest's blobs, those linked in the repository, as their links name them. */
  linked: Map<string, BlobRecord>;
  /** Of an index's children, those stored in the repository. */
  children: Set<string>;
  /** The items found among the caller's extra keys. */
  extra: Record<string, unknown>[];
}

export interface DeleteManifestOptions {
  /** Tags whose images must stay whole (immutable tags): what they reach may not be deleted. */
  protectedTag?: (tag: string) => boolean;
  /** One more write of the transaction that deletes the manifest, without a condition: its audit record. */
  alsoWrite?: TransactionItem;
  /** Why and by whom: marked for the manifest and each tag in the delete's transactions (deletion-markers.ts). */
  deletedBy?: DeletionMarker;
}

/** A protected tag names the manifest, or an index (`via`) that reaches it; nothing was deleted. */
export class ProtectedManifestError extends Error {
  constructor(
    readonly tag: string,
    readonly via?: string,
  ) {
    super(via ? `tag ${tag} reaches the manifest through index ${via}` : `tag ${tag} names the manifest`);
    this.name = 'ProtectedManifestError';
  }
}

/** An immutable tag already names another digest; the push wrote nothing. */
export class TagConflictError extends Error {
  constructor(
    readonly repository: string,
    readonly tag: string,
  ) {
    super(`tag ${tag} of ${repository} names another manifest and may not change`);
    this.name = 'TagConflictError';
  }
}

/** A blob of the repository was unlinked since the push read its blobs: read them again. */
export class UnlinkedMeanwhileError extends Error {
  constructor(readonly repository: string) {
    super(`a blob of ${repository} was unlinked during the push`);
    this.name = 'UnlinkedMeanwhileError';
  }
}

/** A manifest in the repository references the blob: unlinking it would break that manifest. */
export class BlobInUseError extends Error {
  constructor(
    readonly digest: string,
    readonly manifest: string,
  ) {
    super(`blob ${digest} is referenced by manifest ${manifest}`);
    this.name = 'BlobInUseError';
  }
}

/** A GC run began after the push read the epoch (internal: the push stamps its blobs again). */
class EpochMovedError extends Error {}

/** A child the index lists was deleted while the index was being pushed; the push wrote nothing. */
export class ChildManifestGoneError extends Error {
  constructor(readonly digest: string) {
    super(`manifest ${digest} is no longer stored`);
    this.name = 'ChildManifestGoneError';
  }
}

export interface Page<T> {
  items: T[];
  /** Set when more items follow; the value to pass as `last` for the next page. */
  next?: string;
}

/** Manifests, tags, referrers and the repository catalog. */
export class ManifestStore {
  private readonly epoch: GcEpoch;
  /**
   * The `unlinks` counter of repositories whose blobs were unlinked, as last read; absent for
   * the others (nearly all: blob deletes are rare), which pushes take as never unlinked.
   */
  private readonly unlinksSeen = new Map<string, number>();

  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly objects: BlobObjectStore,
    private readonly blobIndex: BlobIndex,
  ) {
    this.epoch = new GcEpoch(dynamo, tableName);
  }

  /**
   * What the tag names, as its item holds it, with the manifest's bytes when the manifest is
   * small enough to be kept in the tag item; `size` is absent on tags pushed before tags carried
   * it. Strongly consistent: a tag moves, and a pull right after a push must get the new image.
   */
  async describeTag(repository: string, tag: string): Promise<DescribedTag | undefined> {
    const { Item } = await this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.tag(repository, tag), ConsistentRead: true }));
    return (
      Item && {
        digest: Item.digest as string,
        mediaType: Item.mediaType as string | undefined,
        size: Item.size as number | undefined,
        ...(Item.body instanceof Uint8Array ? { bytes: Item.body } : {}),
        ...(typeof Item.checkedAt === 'number' ? { checkedAt: Item.checkedAt } : {}),
        ...(typeof Item.pulledAt === 'number' ? { pulledAt: Item.pulledAt } : {}),
      }
    );
  }

  async resolveTag(repository: string, tag: string): Promise<string | undefined> {
    return (await this.describeTag(repository, tag))?.digest;
  }

  /**
   * A manifest's digest, media type and size, without its bytes (never read from S3), for a
   * HEAD: one strong read, since pushers HEAD what they may have to push, where misses are common.
   */
  async describeManifest(repository: string, digest: string): Promise<Omit<StoredManifest, 'bytes'> | undefined> {
    const Item = await getItem(this.dynamo, this.tableName, keys.manifest(repository, digest), {
      projection: { ProjectionExpression: '#mediaType, #size', ExpressionAttributeNames: { '#mediaType': 'mediaType', '#size': 'size' } },
    });
    return Item && { digest, mediaType: Item.mediaType as string, size: Item.size as number };
  }

  /** A manifest with its bytes, for a GET: pulls of immutable content, eventually consistent, strongly on a miss (get-item.ts). */
  async getManifest(repository: string, digest: string): Promise<StoredManifest | undefined> {
    const Item = await getItem(this.dynamo, this.tableName, keys.manifest(repository, digest), { eventual: true });
    if (!Item) return undefined;
    const bytes = Item.body instanceof Uint8Array ? Item.body : await this.objects.getBytes(Item.objectKey as string);
    return { digest, mediaType: Item.mediaType as string, size: Item.size as number, bytes };
  }

  /**
   * Everything a push must read before its transaction, in one BatchGetItem (strongly
   * consistent: these reads decide the write): the links of `blobDigests`, the manifests of
   * `childDigests`, the repository's GC epoch when this process does not know it yet, and the
   * caller's `extra` items (of which only `extra.attributes` are read).
   */
  async readForPush(
    repository: string,
    blobDigests: readonly string[],
    childDigests: readonly string[],
    extra: { keys: readonly Record<string, string>[]; attributes: readonly string[] } = { keys: [], attributes: [] },
  ): Promise<PushReads> {
    const epochKey = this.epoch.keyIfUnknown(repository);
    const childKeys = [...new Set(childDigests)].map((digest) => keys.manifest(repository, digest));
    // Only what is needed from each kind of item: never a manifest's bytes.
    const attributes = [...new Set(['PK', 'SK', 'digest', 'size', 'objectKey', 'epoch', ...extra.attributes])];
    const items = await existingItems(
      this.dynamo,
      this.tableName,
      [...linkKeys(repository, blobDigests), ...childKeys, ...(epochKey ? [epochKey] : []), ...extra.keys],
      {
        ProjectionExpression: attributes.map((_, index) => `#p${index}`).join(', '),
        ExpressionAttributeNames: Object.fromEntries(attributes.map((name, index) => [`#p${index}`, name])),
      },
    );
    const isKey = (key: Record<string, string>) => (item: Record<string, unknown>) => item.PK === key.PK && item.SK === key.SK;
    if (epochKey) this.epoch.learn(repository, items.find(isKey(epochKey)));
    return {
      linked: linkedRecords(items),
      children: new Set(items.filter((item) => (item.SK as string).startsWith(MANIFEST_PREFIX)).map((item) => item.digest as string)),
      extra: items.filter((item) => extra.keys.some((key) => isKey(key)(item))),
    };
  }

  /**
   * Stores a manifest and, in the same transaction, moves the tag to it, so that a tag never
   * points at a manifest that is not stored, however many pushes of the tag race.
   *
   * The same transaction references the manifest's blobs (`blobs`, their live records as read
   * to validate it): it touches each record, stamped with the GC epoch, on condition that GC
   * has not claimed it, and checks the epoch; so either GC's claim fails or this push does,
   * with BlobGoneError (docs/garbage-collection.md). It also checks that no blob of the
   * repository was unlinked since the blobs were read (UnlinkedMeanwhileError: read them
   * again). References beyond what one transaction holds are written first, in transactions of
   * their own under the same epoch check.
   *
   * An index also touches its children (`referencedAt`), on condition that they still exist:
   * retention deletes an untagged manifest only if it was not touched since it looked, so a
   * child can never be deleted by retention from under an index that was just pushed
   * (docs/policies.md).
   */
  async putManifest(repository: string, manifest: NewManifest, tags: readonly string[], options: PutManifestOptions): Promise<void> {
    const stored = await this.manifestItem(repository, manifest, tags);
    for (let attempt = 1; ; attempt++) {
      const epoch = await this.epoch.current(repository);
      try {
        await this.writeManifest(repository, { ...stored, pushedAt: Date.now() }, manifest, tags, options, epoch);
        return;
      } catch (error) {
        if (error instanceof UnlinkedMeanwhileError) {
          // The caller reads the blobs again, after this read.
          await this.readUnlinks(repository);
          throw error;
        }
        if (!(error instanceof EpochMovedError)) throw error;
        // A GC run began since the epoch was read: stamp the blobs with its epoch.
        this.epoch.forget(repository);
        if (attempt === EPOCH_ATTEMPTS) throw new ContendedError('the GC epoch');
      }
    }
  }

  /**
   * The repository's `unlinks` counter as this process knows it, for a push to take before it
   * reads its blobs and hand back to putManifest (undefined: never unlinked, as far as known).
   */
  knownUnlinks(repository: string): number | undefined {
    return this.unlinksSeen.get(repository);
  }

  private async writeManifest(
    repository: string,
    stored: Record<string, unknown>,
    manifest: NewManifest,
    tags: readonly string[],
    options: PutManifestOptions,
    epoch: number,
  ): Promise<void> {
    const now = stored.pushedAt as number;
    const { unlinks } = options;
    const writes: TransactionItem[] = [
      { Put: { TableName: this.tableName, Item: stored } },
      {
        Update: {
          TableName: this.tableName,
          Key: keys.catalogEntry(repository),
          UpdateExpression: 'SET #name = :name, updatedAt = :now ADD pushes :one',
          ...(unlinks === undefined ? { ConditionExpression: 'attribute_not_exists(unlinks)' } : { ConditionExpression: 'unlinks = :unlinks' }),
          ExpressionAttributeNames: { '#name': 'name' },
          ExpressionAttributeValues: { ':name': repository, ':now': now, ':one': 1, ...(unlinks === undefined ? {} : { ':unlinks': unlinks }) },
        },
      },
      this.epoch.check(repository, epoch),
      ...(options.rulesCheck ? [options.rulesCheck] : []),
    ];
    const catalogWrite = 1;
    const epochCheck = 2;
    const rulesCheck = options.rulesCheck ? 3 : -1;
    const firstTag = writes.length;
    for (const tag of tags) {
      writes.push({
        Put: {
          TableName: this.tableName,
          Item: tagItem(repository, tag, manifest, now),
          ...(options.immutableTags?.has(tag)
            ? { ConditionExpression: 'attribute_not_exists(PK) OR digest = :digest', ExpressionAttributeValues: { ':digest': manifest.digest } }
            : {}),
        },
      });
    }
    if (manifest.subject) {
      writes.push({ Put: { TableName: this.tableName, Item: referrerItem(repository, manifest.subject, manifest) } });
    }
    if (options.alsoWrite) writes.push(options.alsoWrite);
    // What the manifest references, each written on condition that it is still there: its
    // blobs (touched and stamped with the epoch) and an index's children (`referencedAt`).
    const children = [...new Set(manifest.childDigests)].filter((child) => child !== manifest.digest);
    const references: { write: TransactionItem; gone: () => Error }[] = [
      ...this.blobIndex
        .referenceWrites(options.blobs, now, epoch)
        .map((write, index) => ({ write, gone: () => new BlobGoneError(options.blobs[index]!.digest) })),
      ...children.map((child) => ({ write: this.childTouch(repository, child, now), gone: () => new ChildManifestGoneError(child) })),
    ];
    const inline = Math.max(0, TRANSACTION_LIMIT - writes.length);
    // References that do not fit go first, in transactions of their own under the same epoch check.
    for (let start = inline; start < references.length; start += TRANSACTION_LIMIT - 1) {
      const batch = references.slice(start, start + TRANSACTION_LIMIT - 1);
      await this.transact([...batch.map((reference) => reference.write), this.epoch.check(repository, epoch)], (failed) => {
        if (failed.includes(batch.length)) throw new EpochMovedError();
        if (failed.length > 0) throw batch[failed[0]!]!.gone();
      });
    }
    const firstReference = writes.length;
    const inlineReferences = references.slice(0, inline);
    writes.push(...inlineReferences.map((reference) => reference.write));
    await this.transact(writes, (failed) => {
      // Rules changed first: a tag conflict is then judged again under the rules in force.
      if (failed.includes(rulesCheck)) throw new RulesChangedError();
      const conflict = failed.find((index) => index >= firstTag && index < firstTag + tags.length);
      if (conflict !== undefined) throw new TagConflictError(repository, tags[conflict - firstTag]!);
      if (failed.includes(epochCheck)) throw new EpochMovedError();
      if (failed.includes(catalogWrite)) throw new UnlinkedMeanwhileError(repository);
      const gone = failed.find((index) => index >= firstReference);
      if (gone !== undefined) throw inlineReferences[gone - firstReference]!.gone();
    });
  }

  /** The manifest's item; a manifest too large for it goes to S3 first and the item names the object. */
  private async manifestItem(repository: string, manifest: NewManifest, tags: readonly string[]): Promise<Record<string, unknown>> {
    const stored: Record<string, unknown> = {
      ...keys.manifest(repository, manifest.digest),
      digest: manifest.digest,
      mediaType: manifest.mediaType,
      size: manifest.size,
      subject: manifest.subject,
      artifactType: manifest.artifactType,
      blobDigests: manifest.blobDigests,
      childDigests: manifest.childDigests,
      // What this push (or pull-through fetch) did, for the stream's event (docs/events.md): no call more.
      pushedTags: tags.length > 0 ? [...tags] : undefined,
      pushedBy: manifest.pushedBy,
    };
    if (manifest.bytes.byteLength <= INLINE_MANIFEST_LIMIT) {
      stored.body = manifest.bytes;
    } else {
      stored.objectKey = objectKeys.manifest(manifest.digest, randomUUID());
      await this.objects.putBytes(stored.objectKey as string, manifest.bytes);
    }
    return stored;
  }

  /**
   * A manifest fetched from a pull-through upstream (docs/pull-through.md), with the tag it was
   * asked by: the push's items (manifest, tag stamped `checkedAt`, referrer, catalog entry marked
   * `cachedFrom`) in one transaction, with no link checks and no blob touches: blobs and an
   * index's children arrive when they are pulled.
   */
  async cacheManifest(
    repository: string,
    manifest: NewManifest,
    tag: string | undefined,
    cache: { cachedFrom: string; checkedAt: number },
  ): Promise<void> {
    const now = Date.now();
    const pulledAt = epochDay(now);
    const stored = {
      ...(await this.manifestItem(repository, manifest, tag === undefined ? [] : [tag])),
      pushedAt: now,
      pulledAt,
      cachedFrom: cache.cachedFrom,
    };
    const writes: TransactionItem[] = [
      { Put: { TableName: this.tableName, Item: stored } },
      {
        Update: {
          TableName: this.tableName,
          Key: keys.catalogEntry(repository),
          UpdateExpression: 'SET #name = :name, updatedAt = :now, cachedFrom = :from ADD pushes :one',
          ExpressionAttributeNames: { '#name': 'name' },
          ExpressionAttributeValues: { ':name': repository, ':now': now, ':from': cache.cachedFrom, ':one': 1 },
        },
      },
    ];
    if (tag !== undefined) {
      writes.push({ Put: { TableName: this.tableName, Item: { ...tagItem(repository, tag, manifest, now), checkedAt: cache.checkedAt, pulledAt } } });
    }
    if (manifest.subject) writes.push({ Put: { TableName: this.tableName, Item: referrerItem(repository, manifest.subject, manifest) } });
    await retryingConflicts(() => this.dynamo.send(new TransactWriteCommand({ TransactItems: writes })));
  }

  /** The upstream confirmed that a cached tag still names `digest`: answers false when the tag moved meanwhile. */
  async touchCheckedAt(repository: string, tag: string, digest: string, checkedAt: number): Promise<boolean> {
    try {
      await this.dynamo.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.tag(repository, tag),
          UpdateExpression: 'SET checkedAt = :at',
          ConditionExpression: 'digest = :digest',
          ExpressionAttributeValues: { ':at': checkedAt, ':digest': digest },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /** The upstream no longer has a cached tag: it goes, if it still names `digest` (the manifest stays, for GC and retention). */
  async deleteTagIf(repository: string, tag: string, digest: string): Promise<boolean> {
    try {
      await this.dynamo.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: keys.tag(repository, tag),
          ConditionExpression: 'digest = :digest',
          ExpressionAttributeValues: { ':digest': digest },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /** Stamps a cached tag as pulled today (`pulledAt`, an epoch day), for `--keep-days`: one write per tag per day. */
  async markTagPulled(repository: string, tag: string, day: number): Promise<void> {
    await this.dynamo.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.tag(repository, tag),
        UpdateExpression: 'SET pulledAt = :day',
        ConditionExpression: 'attribute_exists(PK) AND (attribute_not_exists(pulledAt) OR pulledAt < :day)',
        ExpressionAttributeValues: { ':day': day },
      }),
    );
  }

  private childTouch(repository: string, child: string, now: number): TransactionItem {
    return {
      Update: {
        TableName: this.tableName,
        Key: keys.manifest(repository, child),
        UpdateExpression: 'SET referencedAt = :now',
        ConditionExpression: 'attribute_exists(PK)',
        ExpressionAttributeValues: { ':now': now },
      },
    };
  }

  /** Runs a transaction; when conditions fail, `explain` gets their positions and throws what they mean. */
  private async transact(writes: TransactionItem[], explain: (failed: number[]) => void): Promise<void> {
    try {
      await retryingConflicts(() => this.dynamo.send(new TransactWriteCommand({ TransactItems: writes })));
    } catch (error) {
      explain(failedConditionIndexes(error));
      throw error;
    }
  }

  /**
   * Unlinks a blob from the repository unless a manifest there references it (BlobInUseError):
   * unlinking it would make that image unpullable. Ordered against pushes through the catalog
   * entry's counters: the unlink is conditioned on no push since it looked for references
   * (`pushes`), and advances `unlinks`, which every push checks against what it saw before
   * reading its blobs. So a push either sees the link gone or fails and reads again. Answers
   * false when the blob was not linked.
   */
  async unlinkBlob(repository: string, digest: string): Promise<boolean> {
    for (let attempt = 1; attempt <= UNLINK_ATTEMPTS; attempt++) {
      // Both before the search for references: a push that commits after this changes `pushes`.
      const [{ Item: entry }, { Item: link }] = await Promise.all([
        this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.catalogEntry(repository), ConsistentRead: true })),
        this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.blobLink(repository, digest), ConsistentRead: true })),
      ]);
      if (!link) return false;
      const manifest = await this.manifestReferencing(repository, digest);
      if (manifest) throw new BlobInUseError(digest, manifest);
      const pushes = entry?.pushes as number | undefined;
      const unlink: TransactionItem[] = [
        { Delete: { TableName: this.tableName, Key: keys.blobLink(repository, digest), ConditionExpression: 'attribute_exists(PK)' } },
        {
          Update: {
            TableName: this.tableName,
            Key: keys.catalogEntry(repository),
            UpdateExpression: 'ADD unlinks :one',
            ...(pushes === undefined
              ? { ConditionExpression: 'attribute_not_exists(pushes)', ExpressionAttributeValues: { ':one': 1 } }
              : { ConditionExpression: 'pushes = :pushes', ExpressionAttributeValues: { ':one': 1, ':pushes': pushes } }),
          },
        },
      ];
      try {
        await retryingConflicts(() => this.dynamo.send(new TransactWriteCommand({ TransactItems: unlink })));
        return true;
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
    }
    throw new ContendedError(`blob ${digest} of ${repository}`);
  }

  /** Reads the repository's `unlinks` counter for pushes, which must see it before reading their blobs. */
  private async readUnlinks(repository: string): Promise<void> {
    const { Item } = await this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.catalogEntry(repository), ConsistentRead: true }));
    if (this.unlinksSeen.size >= UNLINKS_CACHE_LIMIT) this.unlinksSeen.clear();
    const unlinks = Item?.unlinks as number | undefined;
    if (unlinks === undefined) this.unlinksSeen.delete(repository);
    else this.unlinksSeen.set(repository, unlinks);
  }

  /**
   * Deletes a manifest, every tag that points at it and its referrer entry, atomically with
   * respect to the manifest: answers false when it was not there. A manifest that a protected
   * tag reaches (names it, or names an index listing it, at any depth) is refused with
   * ProtectedManifestError. The deletion is conditioned on the manifest not being pushed again
   * and, when tags are protected, on nothing being pushed to the repository since the tags were
   * read (a new tag or index could reach the manifest); otherwise it starts again from a fresh
   * read, a bounded number of times.
   */
  async deleteManifest(repository: string, digest: string, options: DeleteManifestOptions = {}): Promise<boolean> {
    for (let attempt = 1; attempt <= DELETE_ATTEMPTS; attempt++) {
      const [{ Item }, entry] = await Promise.all([
        this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.manifest(repository, digest), ConsistentRead: true })),
        // Before the tags: any push since (a tag, an index at any depth) changes `pushes`.
        options.protectedTag
          ? this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.catalogEntry(repository), ConsistentRead: true }))
          : undefined,
      ]);
      if (!Item) return false;
      const tags = await this.queryAll(repoPartition(repository), TAG_PREFIX, TAG_PROJECTION);
      if (options.protectedTag) await this.refuseIfProtected(repository, digest, tags, options.protectedTag);
      const pointing = tags.filter((item) => item.digest === digest).map((item) => item.tag as string);
      const noPushSince = entry && this.catalogUnchanged(repository, entry.Item?.pushes as number | undefined);
      if (await this.deleteWithTags(repository, Item, pointing, noPushSince, options.deletedBy, options.alsoWrite)) return true;
    }
    throw new ContendedError(`manifest ${digest} of ${repository}`);
  }

  /** Holds while no manifest was pushed to the repository since `pushes` was read. */
  private catalogUnchanged(repository: string, pushes: number | undefined): TransactionItem {
    return {
      ConditionCheck: {
        TableName: this.tableName,
        Key: keys.catalogEntry(repository),
        ...(pushes === undefined
          ? { ConditionExpression: 'attribute_not_exists(pushes)' }
          : { ConditionExpression: 'pushes = :pushes', ExpressionAttributeValues: { ':pushes': pushes } }),
      },
    };
  }

  /** Throws ProtectedManifestError when a protected tag among `tags` reaches `digest`. */
  private async refuseIfProtected(
    repository: string,
    digest: string,
    tags: readonly Record<string, unknown>[],
    protectedTag: (tag: string) => boolean,
  ): Promise<void> {
    // Which protected tag each manifest on the way was reached from, breadth first.
    const reachedFrom = new Map<string, string>();
    for (const item of tags) {
      const tag = item.tag as string;
      if (!protectedTag(tag)) continue;
      if (item.digest === digest) throw new ProtectedManifestError(tag);
      if (!reachedFrom.has(item.digest as string)) reachedFrom.set(item.digest as string, tag);
    }
    let frontier = [...reachedFrom.keys()];
    while (frontier.length > 0) {
      const items = await existingItems(
        this.dynamo,
        this.tableName,
        frontier.map((parent) => keys.manifest(repository, parent)),
        { ProjectionExpression: '#digest, #children', ExpressionAttributeNames: { '#digest': 'digest', '#children': 'childDigests' } },
      );
      const next: string[] = [];
      for (const item of items) {
        const tag = reachedFrom.get(item.digest as string)!;
        for (const child of (item.childDigests as string[] | undefined) ?? []) {
          if (child === digest) throw new ProtectedManifestError(tag, item.digest as string);
          if (!reachedFrom.has(child)) {
            reachedFrom.set(child, tag);
            next.push(child);
          }
        }
      }
      frontier = next;
    }
  }

  /**
   * Deletes the manifest item read as `item`, the tags naming it and its referrer entry; the
   * manifest goes in the last batch, so that a failure part-way leaves it in place, and every
   * batch holds only while the manifest is as read (and, with `noPushSince`, while nothing was
   * pushed to the repository). Answers false when a condition failed: a tag moved, or the
   * manifest or the repository changed.
   */
  private async deleteWithTags(
    repository: string,
    item: Record<string, unknown>,
    tags: readonly string[],
    noPushSince?: TransactionItem,
    deletedBy?: DeletionMarker,
    alsoWrite?: TransactionItem,
  ): Promise<boolean> {
    const digest = item.digest as string;
    const asRead =
      typeof item.pushedAt === 'number'
        ? { ConditionExpression: 'pushedAt = :pushedAt', ExpressionAttributeValues: { ':pushedAt': item.pushedAt } }
        : { ConditionExpression: 'attribute_exists(PK)' };
    const checks: TransactionItem[] = [
      { ConditionCheck: { TableName: this.tableName, Key: keys.manifest(repository, digest), ...asRead } },
      ...(noPushSince ? [noPushSince] : []),
    ];
    // Each deleted tag and the manifest with its marker, in the same transaction.
    const marked = (sortKey: string): TransactionItem[] => (deletedBy ? [deletionMarkerPut(this.tableName, repository, sortKey, deletedBy)] : []);
    const deletes: TransactionItem[][] = tags.map((tag) => [
      {
        Delete: {
          TableName: this.tableName,
          Key: keys.tag(repository, tag),
          // A tag moved by a concurrent push is no longer ours to delete.
          ConditionExpression: 'digest = :digest',
          ExpressionAttributeValues: { ':digest': digest },
        },
      },
      ...marked(keys.tag(repository, tag).SK),
    ]);
    if (item.subject) {
      deletes.push([{ Delete: { TableName: this.tableName, Key: keys.referrer(repository, item.subject as string, digest) } }]);
    }
    const perBatch = Math.floor((TRANSACTION_LIMIT - checks.length - (deletedBy ? 1 : 0) - (alsoWrite ? 1 : 0)) / (deletedBy ? 2 : 1));
    for (let start = 0; ; start += perBatch) {
      const last = start + perBatch >= deletes.length;
      const batch = deletes.slice(start, start + perBatch).flat();
      // The last batch deletes the manifest itself, under the same condition its check had.
      const manifestKey = keys.manifest(repository, digest);
      const manifestWrites = last
        ? [
            { Delete: { TableName: this.tableName, Key: manifestKey, ...asRead } },
            ...marked(manifestKey.SK),
            ...checks.slice(1),
            ...(alsoWrite ? [alsoWrite] : []),
          ]
        : checks;
      try {
        await retryingConflicts(() => this.dynamo.send(new TransactWriteCommand({ TransactItems: [...batch, ...manifestWrites] })));
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        return false;
      }
      if (last) return true;
    }
  }

  /**
   * Retention's tag delete: only if the tag still names the digest and was not pushed since
   * it was read (`pushedAt`), so that a push racing retention wins. Answers whether it went.
   */
  async deleteTagIfUnchanged(repository: string, tag: TagRecord): Promise<boolean> {
    const key = keys.tag(repository, tag.tag);
    const remove = {
      Delete: {
        TableName: this.tableName,
        Key: key,
        ConditionExpression: 'digest = :digest AND updatedAt = :updatedAt',
        ExpressionAttributeValues: { ':digest': tag.digest, ':updatedAt': tag.pushedAt },
      },
    };
    try {
      // With its marker: the tag's delete event says retention did it.
      const marker = deletionMarkerPut(this.tableName, repository, key.SK, RETENTION_DELETION);
      await retryingConflicts(() => this.dynamo.send(new TransactWriteCommand({ TransactItems: [remove, marker] })));
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /**
   * Retention's manifest delete, for a manifest no tag names: only if it was neither pushed
   * again (a push may have tagged it) nor referenced by a new index since it was read. Its
   * referrer entry goes in the same transaction. Answers whether it went.
   */
  async deleteManifestIfUnchanged(
    repository: string,
    manifest: Pick<ManifestRecord, 'digest' | 'pushedAt' | 'referencedAt' | 'subject'>,
  ): Promise<boolean> {
    const unchanged =
      manifest.referencedAt === undefined
        ? 'pushedAt = :pushedAt AND attribute_not_exists(referencedAt)'
        : 'pushedAt = :pushedAt AND referencedAt = :referencedAt';
    const writes: Record<string, unknown>[] = [
      {
        Delete: {
          TableName: this.tableName,
          Key: keys.manifest(repository, manifest.digest),
          ConditionExpression: unchanged,
          ExpressionAttributeValues: {
            ':pushedAt': manifest.pushedAt,
            ...(manifest.referencedAt === undefined ? {} : { ':referencedAt': manifest.referencedAt }),
          },
        },
      },
    ];
    if (manifest.subject) {
      writes.push({ Delete: { TableName: this.tableName, Key: keys.referrer(repository, manifest.subject, manifest.digest) } });
    }
    writes.push(deletionMarkerPut(this.tableName, repository, keys.manifest(repository, manifest.digest).SK, RETENTION_DELETION));
    try {
      await retryingConflicts(() => this.dynamo.send(new TransactWriteCommand({ TransactItems: writes as never })));
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /** Every tag of the repository with the digest it names and when it was pushed. */
  async listTagRecords(repository: string): Promise<TagRecord[]> {
    const items = await this.queryAll(repoPartition(repository), TAG_PREFIX, TAG_PROJECTION);
    return items.map((item) => ({
      tag: item.tag as string,
      digest: item.digest as string,
      pushedAt: (item.updatedAt as number | undefined) ?? 0,
      ...(typeof item.pulledAt === 'number' ? { pulledAt: item.pulledAt } : {}),
    }));
  }

  /** Every manifest of the repository, without bytes: what retention evaluates. */
  async listManifestRecords(repository: string): Promise<ManifestRecord[]> {
    const items = await this.queryAll(repoPartition(repository), MANIFEST_PREFIX, {
      ProjectionExpression: '#digest, #mediaType, #pushedAt, #referencedAt, #subject, #childDigests, pulledAt',
      ExpressionAttributeNames: {
        '#digest': 'digest',
        '#mediaType': 'mediaType',
        '#pushedAt': 'pushedAt',
        '#referencedAt': 'referencedAt',
        '#subject': 'subject',
        '#childDigests': 'childDigests',
      },
    });
    return items.map((item) => ({
      digest: item.digest as string,
      mediaType: item.mediaType as string,
      pushedAt: (item.pushedAt as number | undefined) ?? 0,
      referencedAt: item.referencedAt as number | undefined,
      subject: item.subject as string | undefined,
      childDigests: (item.childDigests as string[] | undefined) ?? [],
      ...(typeof item.pulledAt === 'number' ? { pulledAt: item.pulledAt } : {}),
    }));
  }

  /**
   * A manifest of the repository that references the blob, if any: what a blob delete must
   * not break. Reads the repository's manifest items, filtered: blob deletes are rare.
   */
  private async manifestReferencing(repository: string, blobDigest: string): Promise<string | undefined> {
    const condition = keyCondition(repoPartition(repository), MANIFEST_PREFIX);
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.dynamo.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: condition.KeyConditionExpression,
          FilterExpression: 'contains(#blobs, :blob)',
          ProjectionExpression: '#digest',
          ExpressionAttributeNames: { '#blobs': 'blobDigests', '#digest': 'digest' },
          ExpressionAttributeValues: { ...condition.ExpressionAttributeValues, ':blob': blobDigest },
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
        }),
      );
      const found = page.Items?.[0];
      if (found) return found.digest as string;
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return undefined;
  }

  /**
   * Removes only the tag; answers false when the repository has no such tag. With `rulesCheck`
   * (PolicyStore.immutableRulesCheck: the rules that found the tag mutable are still in force)
   * the delete and the check are one transaction, else RulesChangedError and nothing is deleted.
   * With `deletedBy` its marker is in the same transaction (deletion-markers.ts).
   */
  async deleteTag(
    repository: string,
    tag: string,
    rulesCheck?: TransactionItem,
    deletedBy?: DeletionMarker,
    alsoWrite?: TransactionItem,
  ): Promise<boolean> {
    const remove = { TableName: this.tableName, Key: keys.tag(repository, tag), ConditionExpression: 'attribute_exists(PK)' };
    // The rules check stays second: a failure there is told apart by its index.
    const others = [
      ...(rulesCheck ? [rulesCheck] : []),
      ...(deletedBy ? [deletionMarkerPut(this.tableName, repository, remove.Key.SK, deletedBy)] : []),
      ...(alsoWrite ? [alsoWrite] : []),
    ];
    try {
      if (others.length > 0)
        await retryingConflicts(() => this.dynamo.send(new TransactWriteCommand({ TransactItems: [{ Delete: remove }, ...others] })));
      else await this.dynamo.send(new DeleteCommand(remove));
      return true;
    } catch (error) {
      if (rulesCheck && failedConditionIndexes(error).includes(1)) throw new RulesChangedError();
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async repositoryExists(repository: string): Promise<boolean> {
    const { Item } = await this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.catalogEntry(repository), ConsistentRead: true }));
    // An entry without a name only counts unlinks of a repository no manifest was pushed to.
    return Item?.name !== undefined;
  }

  /** Tags in byte order (what `sort.Strings` and the conformance suite call lexical). */
  async listTags(repository: string, options: PageOptions): Promise<Page<string>> {
    const page = await this.queryPage(repoPartition(repository), TAG_PREFIX, options, undefined, TAG_PROJECTION);
    return { items: page.items.map((item) => item.tag as string), next: page.next };
  }

  async listRepositories(options: PageOptions, visible: (name: string) => boolean): Promise<Page<string>> {
    const page = await this.queryPage(CATALOG_PARTITION, '', options, (item) => item.name !== undefined && visible(item.name as string));
    return { items: page.items.map((item) => item.name as string), next: page.next };
  }

  /**
   * The manifests whose subject is `subject`, in digest order, one page at a time: at most
   * REFERRERS_PAGE_ITEMS descriptors and about REFERRERS_PAGE_BYTES of them, so that a page
   * stays far below Lambda's 6 MB response whatever was pushed.
   */
  async listReferrers(
    repository: string,
    subject: string,
    options: { last?: string; artifactType?: string } = {},
  ): Promise<Page<ManifestDescriptorInfo>> {
    const prefix = referrerPrefix(subject);
    const items: ManifestDescriptorInfo[] = [];
    let bytes = 0;
    let startKey: Record<string, unknown> | undefined = options.last ? keys.referrer(repository, subject, options.last) : undefined;
    while (true) {
      const result = await this.dynamo.send(
        new QueryCommand({
          TableName: this.tableName,
          ...keyCondition(repoPartition(repository), prefix),
          ExclusiveStartKey: startKey,
          Limit: REFERRERS_PAGE_ITEMS,
          ConsistentRead: true,
        }),
      );
      for (const item of result.Items ?? []) {
        const descriptor = referrerDescriptor(item);
        if (options.artifactType !== undefined && descriptor.artifactType !== options.artifactType) continue;
        if (items.length === REFERRERS_PAGE_ITEMS || (items.length > 0 && bytes + descriptorBytes(descriptor) > REFERRERS_PAGE_BYTES)) {
          return { items, next: items[items.length - 1]!.digest };
        }
        items.push(descriptor);
        bytes += descriptorBytes(descriptor);
      }
      startKey = result.LastEvaluatedKey;
      if (!startKey) return { items };
    }
  }

  private queryAll(
    partition: string,
    prefix: string,
    projection?: { ProjectionExpression?: string; ExpressionAttributeNames?: Record<string, string> },
  ): Promise<Record<string, unknown>[]> {
    return queryItems(this.dynamo, this.tableName, partition, { prefix, projection });
  }

  /** One page of a sorted listing: the items after `last`, at most `limit` of them. */
  private async queryPage(
    partition: string,
    prefix: string,
    options: PageOptions,
    keep: (item: Record<string, unknown>) => boolean = () => true,
    projection: { ProjectionExpression?: string; ExpressionAttributeNames?: Record<string, string> } = {},
  ): Promise<Page<Record<string, unknown>>> {
    const items: Record<string, unknown>[] = [];
    const after = !options.last ? undefined : `${prefix}${options.last}`;
    let startKey: Record<string, unknown> | undefined = after === undefined ? undefined : { PK: partition, SK: after };
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    while (items.length <= limit) {
      const result = await this.dynamo.send(
        new QueryCommand({
          TableName: this.tableName,
          ...keyCondition(partition, prefix),
          ExclusiveStartKey: startKey,
          // One more than asked tells whether a next page exists.
          Limit: Number.isFinite(limit) ? limit + 1 - items.length : undefined,
          ConsistentRead: true,
          ...projection,
        }),
      );
      items.push(...(result.Items ?? []).filter(keep));
      startKey = result.LastEvaluatedKey;
      if (!startKey) break;
    }
    if (items.length > limit) {
      const pageItems = items.slice(0, limit);
      const lastItem = pageItems[pageItems.length - 1];
      return { items: pageItems, next: lastItem ? (lastItem.SK as string).slice(prefix.length) : undefined };
    }
    return { items };
  }
}

/** A tag item: digest, media type and size (all a HEAD by tag answers, in one read), and small manifests themselves (all a GET by tag answers). */
function tagItem(repository: string, tag: string, manifest: NewManifest, now: number): Record<string, unknown> {
  return {
    ...keys.tag(repository, tag),
    tag,
    digest: manifest.digest,
    mediaType: manifest.mediaType,
    size: manifest.size,
    ...(manifest.bytes.byteLength <= TAG_INLINE_LIMIT ? { body: manifest.bytes } : {}),
    updatedAt: now,
  };
}

/** Days since 1970-01-01 (UTC): what `pulledAt` holds. */
export function epochDay(ms: number): number {
  return Math.floor(ms / 86_400_000);
}

/**
 * A referrer entry carries what the referrers API lists. Annotations are kept as JSON text, so
 * that any key a manifest may have (`""`, `__proto__`) round-trips; beyond
 * REFERRER_ANNOTATIONS_LIMIT they are left out of the listing (docs/storage.md).
 */
function referrerItem(repository: string, subject: string, manifest: ManifestDescriptorInfo): Record<string, unknown> {
  const annotations = manifest.annotations === undefined ? undefined : JSON.stringify(manifest.annotations);
  return {
    ...keys.referrer(repository, subject, manifest.digest),
    mediaType: manifest.mediaType,
    digest: manifest.digest,
    size: manifest.size,
    artifactType: manifest.artifactType,
    ...(annotations === undefined
      ? {}
      : annotations.length <= REFERRER_ANNOTATIONS_LIMIT
        ? { annotationsJson: annotations }
        : { annotationsOmitted: true }),
  };
}

function referrerDescriptor(item: Record<string, unknown>): ManifestDescriptorInfo {
  // `annotations` as a map is how entries were written before annotationsJson.
  const annotations =
    typeof item.annotationsJson === 'string'
      ? (JSON.parse(item.annotationsJson) as Record<string, string>)
      : (item.annotations as Record<string, string> | undefined);
  return {
    mediaType: item.mediaType as string,
    digest: item.digest as string,
    size: item.size as number,
    ...(item.artifactType === undefined ? {} : { artifactType: item.artifactType as string }),
    ...(annotations === undefined ? {} : { annotations }),
  };
}

function descriptorBytes(descriptor: ManifestDescriptorInfo): number {
  return Buffer.byteLength(JSON.stringify(descriptor));
}

export interface PageOptions {
  limit?: number;
  last?: string;
}
