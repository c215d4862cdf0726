import { randomUUID } from 'node:crypto';
import {
  DeleteCommand,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { CATALOG_PARTITION, TAG_PREFIX, keys, objectKeys, referrerPrefix, repoPartition } from './keys.js';
import { isConditionFailure, retryingConflicts } from './dynamo-errors.js';
import { existingItems } from './batch-get.js';
import { keyCondition, queryItems } from './query-items.js';
import type { BlobObjectStore } from './blob-object-store.js';

/**
 * Items max out at 400 KB. Manifests up to this size are kept inline in their item, leaving
 * room for the reference lists; larger ones go to S3.
 */
const INLINE_MANIFEST_LIMIT = 200 * 1024;
/** Referrer entries carry annotations for the referrers API; larger ones are read from the manifest. */
const INLINE_ANNOTATIONS_LIMIT = 64 * 1024;
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
}

export interface StoredManifest {
  digest: string;
  mediaType: string;
  size: number;
  bytes: Uint8Array;
}

/** A tag as retention sees it: `pushedAt` is when a push last wrote it (the item's `updatedAt`). */
export interface TagRecord {
  tag: string;
  digest: string;
  pushedAt: number;
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
}

export interface PutManifestOptions {
  /**
   * The tag is immutable: write it only if it is absent or already names this digest, so that
   * of racing pushes exactly one can create it. Otherwise TagConflictError, and nothing is written.
   */
  immutableTag?: boolean;
}

export interface DeleteManifestOptions {
  /**
   * Called with the tags that would be deleted with the manifest, from the same read the
   * deletion is conditioned on; throwing refuses the deletion (immutable tags).
   */
  checkTags?: (tags: readonly string[]) => void;
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
  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly objects: BlobObjectStore,
  ) {}

  async resolveTag(repository: string, tag: string): Promise<string | undefined> {
    const { Item } = await this.dynamo.send(
      new GetCommand({ TableName: this.tableName, Key: keys.tag(repository, tag), ConsistentRead: true }),
    );
    return Item?.digest as string | undefined;
  }

  async getManifest(repository: string, digest: string): Promise<StoredManifest | undefined> {
    const { Item } = await this.dynamo.send(
      new GetCommand({ TableName: this.tableName, Key: keys.manifest(repository, digest), ConsistentRead: true }),
    );
    if (!Item) return undefined;
    const bytes = Item.body instanceof Uint8Array ? Item.body : await this.objects.getBytes(Item.objectKey as string);
    return { digest, mediaType: Item.mediaType as string, size: Item.size as number, bytes };
  }

  /** The subset of `digests` that are manifests in the repository. */
  async existingAmong(repository: string, digests: readonly string[]): Promise<Set<string>> {
    const itemKeys = [...new Set(digests)].map((digest) => keys.manifest(repository, digest));
    const found = await existingItems(this.dynamo, this.tableName, itemKeys);
    return new Set(found.map((item) => item.digest as string));
  }

  /**
   * Stores a manifest and, in the same transaction, moves the tag to it, so that a tag never
   * points at a manifest that is not stored, however many pushes of the tag race.
   *
   * An index also touches its children (`referencedAt`), on condition that they still exist:
   * retention deletes an untagged manifest only if it was not touched since it looked, so a
   * child can never be deleted from under an index that was just pushed (docs/policies.md).
   */
  async putManifest(repository: string, manifest: NewManifest, tag?: string, options: PutManifestOptions = {}): Promise<void> {
    const now = Date.now();
    const stored: Record<string, unknown> = {
      ...keys.manifest(repository, manifest.digest),
      digest: manifest.digest,
      mediaType: manifest.mediaType,
      size: manifest.size,
      subject: manifest.subject,
      blobDigests: manifest.blobDigests,
      childDigests: manifest.childDigests,
      pushedAt: now,
    };
    if (manifest.bytes.byteLength <= INLINE_MANIFEST_LIMIT) {
      stored.body = manifest.bytes;
    } else {
      stored.objectKey = objectKeys.manifest(manifest.digest, randomUUID());
      await this.objects.putBytes(stored.objectKey as string, manifest.bytes);
    }
    const writes: Record<string, unknown>[] = [
      { Put: { TableName: this.tableName, Item: stored } },
      { Put: { TableName: this.tableName, Item: { ...keys.catalogEntry(repository), name: repository, updatedAt: now } } },
    ];
    let tagWrite: number | undefined;
    if (tag) {
      tagWrite = writes.length;
      writes.push({
        Put: {
          TableName: this.tableName,
          Item: { ...keys.tag(repository, tag), tag, digest: manifest.digest, mediaType: manifest.mediaType, updatedAt: now },
          ...(options.immutableTag
            ? { ConditionExpression: 'attribute_not_exists(PK) OR digest = :digest', ExpressionAttributeValues: { ':digest': manifest.digest } }
            : {}),
        },
      });
    }
    if (manifest.subject) {
      writes.push({
        Put: {
          TableName: this.tableName,
          Item: {
            ...keys.referrer(repository, manifest.subject, manifest.digest),
            mediaType: manifest.mediaType,
            digest: manifest.digest,
            size: manifest.size,
            artifactType: manifest.artifactType,
            ...(JSON.stringify(manifest.annotations ?? {}).length <= INLINE_ANNOTATIONS_LIMIT
              ? { annotations: manifest.annotations }
              : { annotationsInManifest: true }),
          },
        },
      });
    }
    const children = [...new Set(manifest.childDigests)].filter((child) => child !== manifest.digest);
    const firstChild = writes.length;
    // An index with more children than a transaction holds is written without the touches:
    // retention's grace period is then its only protection (docs/policies.md).
    if (children.length > 0 && writes.length + children.length <= TRANSACTION_LIMIT) {
      for (const child of children) {
        writes.push({
          Update: {
            TableName: this.tableName,
            Key: keys.manifest(repository, child),
            UpdateExpression: 'SET referencedAt = :now',
            ConditionExpression: 'attribute_exists(PK)',
            ExpressionAttributeValues: { ':now': now },
          },
        });
      }
    }
    try {
      await retryingConflicts(() => this.dynamo.send(new TransactWriteCommand({ TransactItems: writes as never })));
    } catch (error) {
      const failed = failedConditions(error);
      if (tag && tagWrite !== undefined && failed.includes(tagWrite)) throw new TagConflictError(repository, tag);
      const gone = failed.find((index) => index >= firstChild);
      if (gone !== undefined && children[gone - firstChild]) throw new ChildManifestGoneError(children[gone - firstChild]!);
      throw error;
    }
  }

  /**
   * Deletes a manifest, every tag that points at it and its referrer entry, atomically with
   * respect to the manifest: answers false when it was not there.
   */
  async deleteManifest(repository: string, digest: string, options: DeleteManifestOptions = {}): Promise<boolean> {
    const { Item } = await this.dynamo.send(
      new GetCommand({ TableName: this.tableName, Key: keys.manifest(repository, digest), ConsistentRead: true }),
    );
    if (!Item) return false;
    const tags = await this.tagsPointingAt(repository, digest);
    options.checkTags?.(tags);
    // A push of the manifest since this read (it rewrites the item, maybe with a new tag) makes
    // the tag list stale: start again from a fresh read.
    const manifestDelete = {
      TableName: this.tableName,
      Key: keys.manifest(repository, digest),
      ...(typeof Item.pushedAt === 'number'
        ? { ConditionExpression: 'pushedAt = :pushedAt', ExpressionAttributeValues: { ':pushedAt': Item.pushedAt } }
        : {}),
    };
    const deletes: Record<string, unknown>[] = tags.map((tag) => ({
      Delete: {
        TableName: this.tableName,
        Key: keys.tag(repository, tag),
        // A tag moved by a concurrent push is no longer ours to delete.
        ConditionExpression: 'digest = :digest',
        ExpressionAttributeValues: { ':digest': digest },
      },
    }));
    if (Item.subject) {
      deletes.push({ Delete: { TableName: this.tableName, Key: keys.referrer(repository, Item.subject as string, digest) } });
    }
    // The manifest goes in the last batch so that a failure part-way leaves it in place.
    for (let start = 0; start < deletes.length; start += TRANSACTION_LIMIT - 1) {
      const batch = deletes.slice(start, start + TRANSACTION_LIMIT - 1);
      const last = start + TRANSACTION_LIMIT - 1 >= deletes.length;
      if (last) batch.push({ Delete: manifestDelete });
      try {
        await this.dynamo.send(new TransactWriteCommand({ TransactItems: batch as never }));
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        // A tag moved under us, or the manifest was pushed again: retry from a fresh read.
        return this.deleteManifest(repository, digest, options);
      }
    }
    if (deletes.length === 0) {
      try {
        await this.dynamo.send(new TransactWriteCommand({ TransactItems: [{ Delete: manifestDelete }] }));
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        return this.deleteManifest(repository, digest, options);
      }
    }
    return true;
  }

  /**
   * Retention's tag delete: only if the tag still names the digest and was not pushed since
   * it was read (`pushedAt`), so that a push racing retention wins. Answers whether it went.
   */
  async deleteTagIfUnchanged(repository: string, tag: TagRecord): Promise<boolean> {
    try {
      await this.dynamo.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: keys.tag(repository, tag.tag),
          ConditionExpression: 'digest = :digest AND updatedAt = :updatedAt',
          ExpressionAttributeValues: { ':digest': tag.digest, ':updatedAt': tag.pushedAt },
        }),
      );
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
    const items = await this.queryAll(repoPartition(repository), TAG_PREFIX);
    return items.map((item) => ({ tag: item.tag as string, digest: item.digest as string, pushedAt: (item.updatedAt as number | undefined) ?? 0 }));
  }

  /** Every manifest of the repository, without bytes: what retention evaluates. */
  async listManifestRecords(repository: string): Promise<ManifestRecord[]> {
    const items = await this.queryAll(repoPartition(repository), MANIFEST_PREFIX, {
      ProjectionExpression: '#digest, #mediaType, #pushedAt, #referencedAt, #subject, #childDigests',
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
    }));
  }

  /** Removes only the tag; answers false when the repository has no such tag. */
  async deleteTag(repository: string, tag: string): Promise<boolean> {
    try {
      await this.dynamo.send(
        new TransactWriteCommand({
          TransactItems: [
            { Delete: { TableName: this.tableName, Key: keys.tag(repository, tag), ConditionExpression: 'attribute_exists(PK)' } },
          ],
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async repositoryExists(repository: string): Promise<boolean> {
    const { Item } = await this.dynamo.send(
      new GetCommand({ TableName: this.tableName, Key: keys.catalogEntry(repository), ConsistentRead: true }),
    );
    return Item !== undefined;
  }

  /** Tags in byte order (what `sort.Strings` and the conformance suite call lexical). */
  async listTags(repository: string, options: PageOptions): Promise<Page<string>> {
    const page = await this.queryPage(repoPartition(repository), TAG_PREFIX, options);
    return { items: page.items.map((item) => item.tag as string), next: page.next };
  }

  async listRepositories(options: PageOptions, visible: (name: string) => boolean): Promise<Page<string>> {
    const page = await this.queryPage(CATALOG_PARTITION, '', options, (item) => visible(item.name as string));
    return { items: page.items.map((item) => item.name as string), next: page.next };
  }

  async listReferrers(repository: string, subject: string): Promise<ManifestDescriptorInfo[]> {
    const items = await this.queryAll(repoPartition(repository), referrerPrefix(subject));
    return Promise.all(
      items.map(async (item) => ({
        mediaType: item.mediaType as string,
        digest: item.digest as string,
        size: item.size as number,
        artifactType: item.artifactType as string | undefined,
        annotations: item.annotationsInManifest
          ? await this.annotationsOf(repository, item.digest as string)
          : (item.annotations as Record<string, string> | undefined),
      })),
    );
  }

  private async annotationsOf(repository: string, digest: string): Promise<Record<string, string> | undefined> {
    const manifest = await this.getManifest(repository, digest);
    if (!manifest) return undefined;
    return (JSON.parse(Buffer.from(manifest.bytes).toString('utf8')) as { annotations?: Record<string, string> }).annotations;
  }

  private async tagsPointingAt(repository: string, digest: string): Promise<string[]> {
    const items = await this.queryAll(repoPartition(repository), TAG_PREFIX);
    return items.filter((item) => item.digest === digest).map((item) => item.tag as string);
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

/** Manifest items' sort keys start with this (keys.manifest). */
const MANIFEST_PREFIX = keys.manifest('', '').SK;

/** Positions of the transaction's items whose condition failed. */
function failedConditions(error: unknown): number[] {
  if ((error as { name?: string } | undefined)?.name !== 'TransactionCanceledException') return [];
  const reasons = (error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons ?? [];
  return reasons.flatMap((reason, index) => (reason.Code === 'ConditionalCheckFailed' ? [index] : []));
}


export interface PageOptions {
  limit?: number;
  last?: string;
}
