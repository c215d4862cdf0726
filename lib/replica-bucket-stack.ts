import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { BlobBucket } from './constructs/blob-bucket.js';
import { RegistryApi } from './constructs/registry-api.js';
import { blobBucketName } from './naming.js';
import type { RegistryOptions } from './registry-options.js';

export interface ReplicaBucketStackProps extends StackProps {
  readonly options: RegistryOptions;
}

/**
 * The blob bucket of a replica region, the destination of the primary bucket's replication, and
 * the replica region's HTTP API (without routes).
 *
 * It is a stack of its own because it must exist before the primary stack: S3 refuses a
 * replication rule whose destination bucket does not exist, and the primary's front door
 * (CloudFront) needs the replica API's endpoint as an origin. The replica's function and routes
 * come after the primary stack (lib/replica-api-stack.ts: they read the global table replica and
 * need the registry's URL). Deployment order: replica buckets, primary, replica APIs.
 */
export class ReplicaBucketStack extends Stack {
  readonly blobs: BlobBucket;
  /** The replica region's API; its routes are added by the replica API stack. */
  readonly api: RegistryApi;

  constructor(scope: Construct, id: string, props: ReplicaBucketStackProps) {
    super(scope, id, props);
    const { options } = props;

    this.blobs = new BlobBucket(this, 'Blobs', {
      bucketName: blobBucketName(options.registryName, this.account, this.region),
      abortIncompleteUploadsAfterDays: options.abortIncompleteUploadsAfterDays,
      noncurrentVersionExpirationDays: options.noncurrentVersionExpirationDays,
    });

    this.api = new RegistryApi(this, 'Api', {
      apiName: `${options.registryName}-replica`,
      description: `OCI Distribution registry (read-only replica)`,
      logRetentionDays: options.logRetentionDays,
      throttle: options.apiThrottle,
    });

    new CfnOutput(this, 'BucketName', { value: this.blobs.bucket.bucketName, description: 'Replica of the blob bucket' });
  }
}
