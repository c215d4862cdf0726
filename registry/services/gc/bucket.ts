import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { forEachConcurrently } from '../../support/concurrency.js';

export interface ListedObject {
  key: string;
  size: number;
  /** Epoch ms. For an object assembled from a multipart upload, S3 gives the upload's start. */
  lastModified: number;
}

/** Key characters that start every upload id (a UUID): listing by them runs in parallel. */
const HEX = '0123456789abcdef';
/** Listings in flight at once; each page's deletions run in parallel too. */
const SHARDS_AT_ONCE = 4;

/** The S3 calls garbage collection makes, with "already gone" treated as done. */
export class GcBucket {
  constructor(
    private readonly s3: S3Client,
    readonly bucketName: string,
  ) {}

  /**
   * Every object under `prefix`, one page at a time; `stop` ends the listing early.
   * ListObjects (v1), paged by `Marker` = the last key: S3 supports it fully, and s3rver cannot
   * page ListObjectsV2 on Node 17+ (it encrypts continuation tokens with DES, which OpenSSL 3
   * refuses, and answers InternalError once a listing passes 1000 keys).
   */
  async *list(prefix: string, stop: () => boolean = () => false): AsyncGenerator<ListedObject[]> {
    let marker: string | undefined;
    for (;;) {
      if (stop()) return;
      const page = await this.s3.send(new ListObjectsCommand({ Bucket: this.bucketName, Prefix: prefix, Marker: marker }));
      const objects = (page.Contents ?? []).flatMap((object) =>
        object.Key ? [{ key: object.Key, size: object.Size ?? 0, lastModified: object.LastModified?.getTime() ?? Date.now() }] : [],
      );
      yield objects;
      if (!page.IsTruncated || objects.length === 0) return;
      marker = page.NextMarker ?? objects[objects.length - 1].key;
    }
  }

  /**
   * Lists `prefix` split by the first hex character after it (upload ids are UUIDs), several
   * shards at once: a million objects take a thousand pages, too slow one after another. Keys
   * whose next character is not lowercase hex are not listed, hence never deleted.
   */
  async listByHexShards(prefix: string, onPage: (objects: ListedObject[]) => Promise<void>, stop: () => boolean): Promise<void> {
    await forEachConcurrently([...HEX], SHARDS_AT_ONCE, async (shard) => {
      for await (const page of this.list(`${prefix}${shard}`, stop)) await onPage(page);
    });
  }

  /** LastModified (epoch ms) of the object, or undefined when it is gone. */
  async lastModified(key: string): Promise<number | undefined> {
    try {
      const head = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucketName, Key: key }));
      return head.LastModified?.getTime() ?? Date.now();
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucketName, Key: key }));
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }

  /** Answers false when S3 no longer knows the upload (completed, aborted, or expired by the lifecycle rule). */
  async abortMultipart(key: string, uploadId: string): Promise<boolean> {
    try {
      await this.s3.send(new AbortMultipartUploadCommand({ Bucket: this.bucketName, Key: key, UploadId: uploadId }));
      return true;
    } catch (error) {
      if (errorName(error) === 'NoSuchUpload') return false;
      throw error;
    }
  }

  async readJson<T>(key: string): Promise<T | undefined> {
    try {
      const object = await this.s3.send(new GetObjectCommand({ Bucket: this.bucketName, Key: key }));
      const text = await object.Body?.transformToString('utf8');
      return text ? (JSON.parse(text) as T) : undefined;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async writeJson(key: string, value: unknown): Promise<void> {
    const body = Buffer.from(JSON.stringify(value));
    await this.s3.send(
      new PutObjectCommand({ Bucket: this.bucketName, Key: key, Body: body, ContentLength: body.byteLength, ContentType: 'application/json' }),
    );
  }
}

function errorName(error: unknown): string | undefined {
  return (error as { name?: string } | undefined)?.name;
}

function isMissing(error: unknown): boolean {
  const name = errorName(error);
  return name === 'NoSuchKey' || name === 'NotFound' || (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404;
}
