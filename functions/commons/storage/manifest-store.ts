import {
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { CATALOG_PARTITION, TAG_PREFIX, keys, objectKeys, referrerPrefix, repoPartition } from './keys.js';
import { isConditionFailure, retryingConflicts } from './dynamo-errors.js';
import { existingItems } from './batch-get.js';
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
   */
  async putManifest(repository: string, manifest: NewManifest, tag?: string): Promise<void> {
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
      stored.objectKey = objectKeys.manifest(manifest.digest);
      await this.objects.putBytes(stored.objectKey as string, manifest.bytes);
    }
    const writes: Record<string, unknown>[] = [
      { Put: { TableName: this.tableName, Item: stored } },
      { Put: { TableName: this.tableName, Item: { ...keys.catalogEntry(repository), name: repository, updatedAt: now } } },
    ];
    if (tag) {
      writes.push({
        Put: {
          TableName: this.tableName,
          Item: { ...keys.tag(repository, tag), tag, digest: manifest.digest, mediaType: manifest.mediaType, updatedAt: now },
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
    await retryingConflicts(() => this.dynamo.send(new TransactWriteCommand({ TransactItems: writes as never })));
  }

  /**
   * Deletes a manifest, every tag that points at it and its referrer entry, atomically with
   * respect to the manifest: answers false when it was not there.
   */
  async deleteManifest(repository: string, digest: string): Promise<boolean> {
    const { Item } = await this.dynamo.send(
      new GetCommand({ TableName: this.tableName, Key: keys.manifest(repository, digest), ConsistentRead: true }),
    );
    if (!Item) return false;
    const tags = await this.tagsPointingAt(repository, digest);
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
      if (last) batch.push({ Delete: { TableName: this.tableName, Key: keys.manifest(repository, digest) } });
      try {
        await this.dynamo.send(new TransactWriteCommand({ TransactItems: batch as never }));
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        // A tag moved under us: retry from a fresh read.
        return this.deleteManifest(repository, digest);
      }
    }
    if (deletes.length === 0) {
      await this.dynamo.send(
        new TransactWriteCommand({ TransactItems: [{ Delete: { TableName: this.tableName, Key: keys.manifest(repository, digest) } }] }),
      );
    }
    return true;
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

  private async queryAll(partition: string, prefix: string): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const result = await this.dynamo.send(
        new QueryCommand({
          TableName: this.tableName,
          ...keyCondition(partition, prefix),
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
        }),
      );
      items.push(...(result.Items ?? []));
      startKey = result.LastEvaluatedKey;
    } while (startKey);
    return items;
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

/** An empty prefix means the whole partition: DynamoDB refuses `begins_with(SK, '')`. */
function keyCondition(partition: string, prefix: string) {
  return prefix === ''
    ? { KeyConditionExpression: 'PK = :pk', ExpressionAttributeValues: { ':pk': partition } }
    : { KeyConditionExpression: 'PK = :pk AND begins_with(SK, :prefix)', ExpressionAttributeValues: { ':pk': partition, ':prefix': prefix } };
}

export interface PageOptions {
  limit?: number;
  last?: string;
}
