import { ScanCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { keys, repoPartition } from '../../storage/keys.js';
import { digestKey } from './digest-keys.js';

/** Key prefixes, taken from keys.ts so that no key shape is spelled twice. */
const BLOB_PK = keys.blob('').PK;
const REPO_PK = repoPartition('');
const LINK_SK = keys.blobLink('', '').SK;
const MANIFEST_SK = keys.manifest('', '').SK;
const UPLOAD_PK = keys.uploadSession('').PK;

/** Only the attributes the mark needs: manifest bodies, hash states and part lists stay in the table. */
const PROJECTED = [
  'PK',
  'SK',
  'digest',
  'objectKey',
  'size',
  'createdAt',
  'lastLinkedAt',
  'deleting',
  'deletingSince',
  'blobDigests',
  'expiresAt',
  'multipartUploadId',
  'tailKey',
];
const PROJECTION = {
  ProjectionExpression: PROJECTED.map((_, index) => `#a${index}`).join(', '),
  ExpressionAttributeNames: Object.fromEntries(PROJECTED.map((name, index) => [`#a${index}`, name])),
};

/**
 * What the mark knows about one digest, in a fixed-shape object of a few words: no item is
 * kept. `objectKey` is set when the blob record was seen.
 */
export class BlobFacts {
  objectKey: string | undefined = undefined;
  size = 0;
  /** `lastLinkedAt`, or `createdAt` for a record that has none. */
  lastLinkedAt = 0;
  /** The run id of a GC claim on the record, and since when. */
  claimedBy: string | undefined = undefined;
  claimedSince = 0;
  /** Named by the `blobDigests` of some manifest item. */
  referenced = false;
  /** Repositories linking the digest, as indexes into `MarkResult.repositories`. */
  repos: number | number[] | undefined = undefined;
  /** A hash of the object key the first link seen names (0: no link seen); whether another link named another. */
  linkKeyHash = 0;
  linksDisagree = false;

  noteLinkObject(objectKey: unknown): void {
    const hash = objectKeyHash(objectKey);
    if (this.linkKeyHash === 0) this.linkKeyHash = hash;
    else if (hash !== this.linkKeyHash) this.linksDisagree = true;
  }

  /**
   * Some link may name an object other than the record's, or there is no record: links left by
   * a deletion that failed part-way before an upload of the same bytes replaced the record.
   * (Or a scan that read the link after an upload wrote it and the record's part before.)
   */
  mayHaveStaleLinks(): boolean {
    return this.repos !== undefined && (this.linksDisagree || this.objectKey === undefined || objectKeyHash(this.objectKey) !== this.linkKeyHash);
  }

  addRepo(index: number): void {
    if (this.repos === undefined) this.repos = index;
    else if (typeof this.repos === 'number') this.repos = [this.repos, index];
    else this.repos.push(index);
  }

  repoIndexes(): number[] {
    return this.repos === undefined ? [] : typeof this.repos === 'number' ? [this.repos] : this.repos;
  }
}

export interface SessionFacts {
  id: string;
  /** Epoch seconds. */
  expiresAt: number;
  multipartUploadId?: string;
  tailKey?: string;
}

export interface MarkResult {
  /** By digestKey(). */
  blobs: Map<string, BlobFacts>;
  /** Repository names, interned: links refer to them by index. */
  repositories: string[];
  sessions: Map<string, SessionFacts>;
  /** `objectKey`s of manifests stored in S3. */
  manifestObjectKeys: Set<string>;
  itemsScanned: number;
  blobRecords: number;
  links: number;
  manifests: number;
  manifestsWithoutBlobList: number;
}

export interface MarkOptions {
  segments: number;
  /** Answers true when the run must stop: the scan then ends with DeadlineReached. */
  stop: () => boolean;
}

export class DeadlineReached extends Error {
  constructor() {
    super('the run reached its deadline');
    this.name = 'DeadlineReached';
  }
}

/**
 * Scans the whole table once (strongly consistent; in parallel segments past one page) and gathers, per digest,
 * its blob record, whether a manifest references it and which repositories link it; also the
 * upload sessions and the S3 keys of large manifests. A scan stopped part-way is useless (a
 * root missed could be swept), so stopping throws.
 */
export async function mark(dynamo: DynamoDBDocumentClient, tableName: string, options: MarkOptions): Promise<MarkResult> {
  const result: MarkResult = {
    blobs: new Map(),
    repositories: [],
    sessions: new Map(),
    manifestObjectKeys: new Set(),
    itemsScanned: 0,
    blobRecords: 0,
    links: 0,
    manifests: 0,
    manifestsWithoutBlobList: 0,
  };
  const repoIndex = new Map<string, number>();
  const internRepo = (name: string): number => {
    let index = repoIndex.get(name);
    if (index === undefined) {
      index = result.repositories.length;
      result.repositories.push(name);
      repoIndex.set(name, index);
    }
    return index;
  };
  const factsOf = (digest: string): BlobFacts => {
    const key = digestKey(digest);
    let facts = result.blobs.get(key);
    if (!facts) {
      facts = new BlobFacts();
      result.blobs.set(key, facts);
    }
    return facts;
  };

  const take = (item: Record<string, unknown>): void => {
    result.itemsScanned++;
    const pk = item.PK as string;
    const sk = item.SK as string;
    if (pk.startsWith(BLOB_PK)) {
      const facts = factsOf(pk.slice(BLOB_PK.length));
      facts.objectKey = item.objectKey as string;
      facts.size = (item.size as number | undefined) ?? 0;
      facts.lastLinkedAt = ((item.lastLinkedAt ?? item.createdAt) as number | undefined) ?? 0;
      if (item.deleting !== undefined) {
        facts.claimedBy = String(item.deleting);
        facts.claimedSince = (item.deletingSince as number | undefined) ?? 0;
      }
      result.blobRecords++;
    } else if (pk.startsWith(REPO_PK)) {
      if (sk.startsWith(LINK_SK)) {
        const facts = factsOf(sk.slice(LINK_SK.length));
        facts.addRepo(internRepo(pk.slice(REPO_PK.length)));
        facts.noteLinkObject(item.objectKey);
        result.links++;
      } else if (sk.startsWith(MANIFEST_SK)) {
        result.manifests++;
        const blobDigests = item.blobDigests;
        if (Array.isArray(blobDigests)) {
          for (const digest of blobDigests) factsOf(digest as string).referenced = true;
        } else {
          result.manifestsWithoutBlobList++;
        }
        if (typeof item.objectKey === 'string') result.manifestObjectKeys.add(item.objectKey);
      }
    } else if (pk.startsWith(UPLOAD_PK)) {
      const id = pk.slice(UPLOAD_PK.length);
      result.sessions.set(id, {
        id,
        expiresAt: (item.expiresAt as number | undefined) ?? 0,
        multipartUploadId: item.multipartUploadId as string | undefined,
        tailKey: item.tailKey as string | undefined,
      });
    }
  };

  const scanPage = (startKey: Record<string, unknown> | undefined, segment: number, total: number) => {
    if (options.stop()) throw new DeadlineReached();
    return dynamo.send(
      new ScanCommand({
        TableName: tableName,
        ...(total > 1 ? { Segment: segment, TotalSegments: total } : {}),
        ConsistentRead: true,
        ExclusiveStartKey: startKey,
        ...PROJECTION,
      }),
    );
  };
  const scanSegment = async (segment: number, total: number): Promise<void> => {
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await scanPage(startKey, segment, total);
      for (const item of page.Items ?? []) take(item);
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  };
  // A table that fits in one page (1 MB) is read in one call; a larger one in parallel
  // segments, its first page read again by its segment.
  if (options.segments > 1) {
    const first = await scanPage(undefined, 0, 1);
    if (!first.LastEvaluatedKey) {
      for (const item of first.Items ?? []) take(item);
      return result;
    }
  }
  await Promise.all(Array.from({ length: options.segments }, (_, segment) => scanSegment(segment, options.segments)));
  return result;
}

/** FNV-1a of an object key, never 0: the mark compares object keys without keeping them. */
function objectKeyHash(objectKey: unknown): number {
  const text = String(objectKey);
  let hash = 2166136261;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 16777619) >>> 0;
  return hash || 1;
}
