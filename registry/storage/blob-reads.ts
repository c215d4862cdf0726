import { S3Client } from '@aws-sdk/client-s3';
import type { RegistryConfig } from '../config/config.js';
import { BlobObjectStore } from './blob-object-store.js';

/** Where a blob GET sends the client: a short-lived presigned URL for the blob's object. */
export interface BlobReads {
  presignRead(objectKey: string): Promise<string>;
}

/**
 * In the primary region, the blob bucket. In a replica region, the local replica bucket when
 * the object has replicated, otherwise the primary's bucket: a pull never fails because S3
 * replication (minutes, usually seconds) has not caught up with a push.
 */
export function blobReadsFor(config: RegistryConfig, local: BlobObjectStore): BlobReads {
  const expiry = config.presignExpirySeconds;
  if (!config.replica) return { presignRead: (key) => local.presignRead(key, expiry) };
  const primary = new BlobObjectStore(new S3Client({ region: config.replica.primaryRegion }), config.replica.primaryBucketName);
  return {
    presignRead: async (key) => ((await local.sizeOf(key)) !== undefined ? local : primary).presignRead(key, expiry),
  };
}
