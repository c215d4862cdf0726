import { S3Client } from '@aws-sdk/client-s3';
import type { RegistryConfig } from '../config/config.js';
import { BlobObjectStore } from './blob-object-store.js';

/** Where a blob GET sends the client: a short-lived presigned URL for the blob's object. */
export interface BlobReads {
  presignRead(objectKey: string): Promise<string>;
}

/** Object keys a process remembers as replicated; past this, it starts remembering afresh. */
const REPLICATED_CACHE_LIMIT = 100_000;

/**
 * In the primary region, the blob bucket. In a replica region, the local replica bucket when
 * the object has replicated, otherwise the primary's bucket: a pull never fails because S3
 * replication (minutes, usually seconds) has not caught up with a push. Blob objects never
 * change once written (each is named by the upload that wrote it), so an object seen in the
 * replica bucket stays there: each warm instance asks S3 (HeadObject) only until it has seen the
 * object replicated once, and redirects to the replica without a call from then on.
 */
export function blobReadsFor(config: RegistryConfig, local: BlobObjectStore): BlobReads {
  const expiry = config.presignExpirySeconds;
  if (!config.replica) return { presignRead: (key) => local.presignRead(key, expiry) };
  const primary = new BlobObjectStore(new S3Client({ region: config.replica.primaryRegion }), config.replica.primaryBucketName);
  const replicated = new Set<string>();
  const replicaHolds = async (key: string): Promise<boolean> => {
    if (replicated.has(key)) return true;
    if ((await local.sizeOf(key)) === undefined) return false;
    if (replicated.size >= REPLICATED_CACHE_LIMIT) replicated.clear();
    replicated.add(key);
    return true;
  };
  return {
    presignRead: async (key) => ((await replicaHolds(key)) ? local : primary).presignRead(key, expiry),
  };
}
