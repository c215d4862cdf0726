import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { BuildMiddleware, MetadataBearer } from '@aws-sdk/types';
import { forEachConcurrently } from '../support/concurrency.js';
import { isLoopbackHost } from '../support/loopback.js';

export interface ListedObject {
  key: string;
  size: number;
  /** Epoch ms. For an object assembled from a multipart upload, S3 gives the upload's start. */
  lastModified: number;
}

/** A part of a multipart upload, as ListParts answers it. */
export interface UploadedPart {
  partNumber: number;
  etag: string;
  size: number;
}

/** Key characters that start every upload id (a UUID): listing by them runs in parallel. */
const HEX = '0123456789abcdef';
/** Listings in flight at once; each page's deletions run in parallel too. */
const SHARDS_AT_ONCE = 4;

/**
 * The S3 side of the registry: blob bytes, upload staging and large manifests, and the
 * listings and small state files garbage collection uses. "Already gone" counts as done.
 */
export class BlobObjectStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucketName: string,
  ) {}

  /** A short-lived URL that lets a client GET the object directly from S3. */
  presignRead(key: string, expiresInSeconds: number): Promise<string> {
    return getSignedUrl(this.s3, new GetObjectCommand({ Bucket: this.bucketName, Key: key }), {
      expiresIn: expiresInSeconds,
    });
  }

  async putBytes(key: string, body: Uint8Array): Promise<void> {
    await this.s3.send(unsignedPayload(new PutObjectCommand({ Bucket: this.bucketName, Key: key, Body: body, ContentLength: body.byteLength })));
  }

  /** Copies an object inside the bucket (no bytes pass through the registry). */
  async copy(sourceKey: string, targetKey: string): Promise<void> {
    await this.s3.send(
      new CopyObjectCommand({
        Bucket: this.bucketName,
        Key: targetKey,
        CopySource: `${this.bucketName}/${encodeURIComponent(sourceKey).replaceAll('%2F', '/')}`,
      }),
    );
  }

  async getBytes(key: string): Promise<Uint8Array> {
    const result = await this.s3.send(new GetObjectCommand({ Bucket: this.bucketName, Key: key }));
    if (!result.Body) throw new Error(`object ${key} has no body`);
    return result.Body.transformToByteArray();
  }

  /** Streams an object's bytes; for reading back a finished blob without holding it in memory. */
  async stream(key: string): Promise<AsyncIterable<Uint8Array>> {
    const result = await this.s3.send(new GetObjectCommand({ Bucket: this.bucketName, Key: key }));
    if (!result.Body) throw new Error(`object ${key} has no body`);
    return result.Body as AsyncIterable<Uint8Array>;
  }

  /**
   * A short-lived URL that lets a client upload one part of a multipart upload straight to S3.
   * The signature covers the key, the upload id and the part number: it is good for nothing else.
   */
  presignUploadPart(key: string, uploadId: string, partNumber: number, expiresInSeconds: number): Promise<string> {
    return getSignedUrl(this.s3, new UploadPartCommand({ Bucket: this.bucketName, Key: key, UploadId: uploadId, PartNumber: partNumber }), {
      expiresIn: expiresInSeconds,
    });
  }

  /**
   * Streams bytes `start` to `end` (inclusive) of an object. With `ifMatch`, S3 refuses (412) when
   * the object no longer has that ETag; the answer's ETag is returned for the caller to check too.
   */
  async streamRange(key: string, start: number, end: number, ifMatch?: string): Promise<{ body: AsyncIterable<Uint8Array>; etag?: string }> {
    const result = await this.s3.send(new GetObjectCommand({ Bucket: this.bucketName, Key: key, Range: `bytes=${start}-${end}`, IfMatch: ifMatch }));
    if (!result.Body) throw new Error(`object ${key} has no body`);
    return { body: result.Body as AsyncIterable<Uint8Array>, etag: result.ETag };
  }

  /** The object's size and ETag, or undefined when there is no such object. */
  async describe(key: string): Promise<{ size: number; etag: string } | undefined> {
    try {
      const result = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucketName, Key: key }));
      return { size: result.ContentLength ?? 0, etag: result.ETag ?? '' };
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  /**
   * The object's size, the SHA-256 checksum S3 verified when the object was written (hex; absent
   * when it was written without one) and its user metadata; undefined when there is no such object.
   */
  async checksummed(key: string): Promise<{ size: number; sha256?: string; metadata: Record<string, string> } | undefined> {
    try {
      const result = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucketName, Key: key, ChecksumMode: 'ENABLED' }));
      // A multipart object's checksum is of its parts' checksums ("<base64>-<parts>"), not of its bytes.
      const full = result.ChecksumSHA256 && !result.ChecksumSHA256.includes('-') ? result.ChecksumSHA256 : undefined;
      return {
        size: result.ContentLength ?? 0,
        sha256: full && Buffer.from(full, 'base64').toString('hex'),
        metadata: result.Metadata ?? {},
      };
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  /** The object's size, or undefined when there is no such object. */
  async sizeOf(key: string): Promise<number | undefined> {
    try {
      const result = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucketName, Key: key }));
      return result.ContentLength;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  /** Deleting what is already gone is not an error: cleanup must be idempotent. */
  async delete(key: string): Promise<void> {
    try {
      await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucketName, Key: key }));
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }

  async startMultipart(key: string): Promise<string> {
    const { UploadId } = await this.s3.send(new CreateMultipartUploadCommand({ Bucket: this.bucketName, Key: key }));
    if (!UploadId) throw new Error('S3 returned no multipart upload id');
    return UploadId;
  }

  /** Answers the part's ETag, which completing the upload needs. */
  async uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array): Promise<string> {
    const { ETag } = await this.s3.send(
      unsignedPayload(
        new UploadPartCommand({
          Bucket: this.bucketName,
          Key: key,
          UploadId: uploadId,
          PartNumber: partNumber,
          Body: body,
          ContentLength: body.byteLength,
        }),
      ),
    );
    if (!ETag) throw new Error('S3 returned no ETag for an uploaded part');
    return ETag;
  }

  /**
   * The parts of a multipart upload, ascending by part number, read page after page (S3 answers
   * at most 1,000 parts a page). NoSuchUpload when S3 no longer knows the upload.
   */
  async listParts(key: string, uploadId: string): Promise<UploadedPart[]> {
    const parts: UploadedPart[] = [];
    let marker: string | undefined;
    for (;;) {
      const page = await this.s3.send(new ListPartsCommand({ Bucket: this.bucketName, Key: key, UploadId: uploadId, PartNumberMarker: marker }));
      for (const part of page.Parts ?? []) {
        if (part.PartNumber === undefined || !part.ETag) throw new Error('S3 listed a part without number or ETag');
        parts.push({ partNumber: part.PartNumber, etag: part.ETag, size: part.Size ?? 0 });
      }
      if (page.IsTruncated !== true || page.NextPartNumberMarker === undefined) return parts;
      marker = page.NextPartNumberMarker;
    }
  }

  async completeMultipart(key: string, uploadId: string, etags: readonly string[]): Promise<void> {
    await this.s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucketName,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: etags.map((ETag, index) => ({ ETag, PartNumber: index + 1 })) },
      }),
    );
  }

  /** Answers false when S3 no longer knows the upload (completed, aborted, or expired by the lifecycle rule). */
  async abortMultipart(key: string, uploadId: string): Promise<boolean> {
    try {
      await this.s3.send(new AbortMultipartUploadCommand({ Bucket: this.bucketName, Key: key, UploadId: uploadId }));
      return true;
    } catch (error) {
      if ((error as { name?: string }).name === 'NoSuchUpload') return false;
      throw error;
    }
  }
  /**
   * Every object under `prefix`, one page at a time; `stop` ends the listing early; `after`
   * starts after that key. ListObjects (v1), paged by `Marker` = the last key: S3 supports it
   * fully, and s3rver cannot page ListObjectsV2 on Node 17+ (it encrypts continuation tokens
   * with DES, which OpenSSL 3 refuses, and answers InternalError once a listing passes 1000 keys).
   */
  async *list(prefix: string, stop: () => boolean = () => false, after?: string): AsyncGenerator<ListedObject[] & { truncated?: boolean }> {
    let marker = after;
    for (;;) {
      if (stop()) return;
      const page = await this.s3.send(new ListObjectsCommand({ Bucket: this.bucketName, Prefix: prefix, Marker: marker }));
      const objects: ListedObject[] & { truncated?: boolean } = (page.Contents ?? []).flatMap((object) =>
        object.Key ? [{ key: object.Key, size: object.Size ?? 0, lastModified: object.LastModified?.getTime() ?? Date.now() }] : [],
      );
      const more = page.IsTruncated === true && objects.length > 0;
      objects.truncated = more;
      yield objects;
      if (!more) return;
      marker = page.NextMarker ?? objects[objects.length - 1].key;
    }
  }

  /**
   * Lists `prefix`, as many calls as the objects need: one page first, and when there is more,
   * the rest split by the first hex character after the prefix (upload ids are UUIDs), several
   * shards at once, since a million objects take a thousand pages, too slow one after another.
   * Shards the first page already covered are not listed again. Keys whose next character is
   * not lowercase hex are skipped, hence never deleted.
   */
  async listByHexShards(prefix: string, onPage: (objects: ListedObject[]) => Promise<void>, stop: () => boolean): Promise<void> {
    const hexNext = (object: ListedObject) => HEX.includes(object.key.charAt(prefix.length)) && object.key.length > prefix.length;
    let last: string | undefined;
    for await (const page of this.list(prefix, stop)) {
      await onPage(page.filter(hexNext));
      if (page.truncated) last = page[page.length - 1]!.key;
      break;
    }
    if (last === undefined) return;
    const reached = last.charAt(prefix.length);
    const rest = [...HEX].filter((shard) => shard >= reached);
    await forEachConcurrently(rest, SHARDS_AT_ONCE, async (shard) => {
      for await (const page of this.list(`${prefix}${shard}`, stop, shard === reached ? last : undefined)) await onPage(page);
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

/**
 * Sends the body unsigned (`x-amz-content-sha256: UNSIGNED-PAYLOAD`) when the request goes over
 * HTTPS or to a loopback address. Otherwise SigV4 hashes a byte-array body with SHA-256 to sign
 * it (@smithy/signature-v4 getPayloadHash): a second pass over every uploaded byte, on top of the
 * registry's own digest. The payload hash protects the bytes in transit; TLS does that already
 * (S3 accepts unsigned payloads over HTTPS), and bytes that never leave the machine need no
 * protection (the local stand-in, which checks SigV4 payload hashes no more than signatures).
 * Plain HTTP to any other host keeps the payload signed. Production talks HTTPS to S3 only.
 */
export const UNSIGNED_PAYLOAD_MIDDLEWARE = 'registryUnsignedPayload';

function unsignedPayload<C extends PutObjectCommand | UploadPartCommand>(command: C): C {
  const middleware: BuildMiddleware<object, MetadataBearer> = (next) => async (args) => {
    const request = args.request as { protocol?: string; hostname?: string; headers?: Record<string, string> };
    if ((request.protocol === 'https:' || (request.hostname !== undefined && isLoopbackHost(request.hostname))) && request.headers) {
      request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
    }
    return next(args);
  };
  (command.middlewareStack as { add(middleware: BuildMiddleware<object, MetadataBearer>, options: object): void }).add(middleware, {
    step: 'build',
    name: UNSIGNED_PAYLOAD_MIDDLEWARE,
  });
  return command;
}

/** S3's answers for "no such object": NoSuchKey to a GET, NotFound (a bare 404) to a HEAD. */
function isMissing(error: unknown): boolean {
  const name = (error as { name?: string } | undefined)?.name;
  return name === 'NoSuchKey' || name === 'NotFound' || (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404;
}
