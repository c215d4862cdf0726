import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  NotFound,
  NoSuchKey,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';

/** The S3 side of the registry: blob bytes, upload staging and large manifests. */
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
    await this.s3.send(new PutObjectCommand({ Bucket: this.bucketName, Key: key, Body: body, ContentLength: body.byteLength }));
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
      if (error instanceof NotFound || (error as { name?: string }).name === 'NotFound') return undefined;
      throw error;
    }
  }

  /** The object's size, or undefined when there is no such object. */
  async sizeOf(key: string): Promise<number | undefined> {
    try {
      const result = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucketName, Key: key }));
      return result.ContentLength;
    } catch (error) {
      if (error instanceof NotFound || (error as { name?: string }).name === 'NotFound') return undefined;
      throw error;
    }
  }

  /** Deleting what is already gone is not an error: cleanup must be idempotent. */
  async delete(key: string): Promise<void> {
    try {
      await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucketName, Key: key }));
    } catch (error) {
      if (!(error instanceof NoSuchKey)) throw error;
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
      new UploadPartCommand({
        Bucket: this.bucketName,
        Key: key,
        UploadId: uploadId,
        PartNumber: partNumber,
        Body: body,
        ContentLength: body.byteLength,
      }),
    );
    if (!ETag) throw new Error('S3 returned no ETag for an uploaded part');
    return ETag;
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

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      await this.s3.send(new AbortMultipartUploadCommand({ Bucket: this.bucketName, Key: key, UploadId: uploadId }));
    } catch (error) {
      if ((error as { name?: string }).name !== 'NoSuchUpload') throw error;
    }
  }
}
