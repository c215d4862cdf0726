import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { BlobBucket } from './constructs/blob-bucket.js';
import { blobBucketName } from './naming.js';
import type { RegistryOptions } from './registry-options.js';

export interface ReplicaBucketStackProps extends StackProps {
  readonly options: RegistryOptions;
}

/**
 * The blob bucket of a replica region: the destination of the primary bucket's replication.
 *
 * It is a stack of its own because it must exist before the primary stack configures
 * replication (S3 refuses a replication rule whose destination bucket does not exist), while the
 * replica region's API must come after the primary stack (it reads the global table replica and
 * may need the primary's URL). Deployment order: replica buckets, primary, replica APIs.
 */
export class ReplicaBucketStack extends Stack {
  readonly blobs: BlobBucket;

  constructor(scope: Construct, id: string, props: ReplicaBucketStackProps) {
    super(scope, id, props);
    const { options } = props;

    this.blobs = new BlobBucket(this, 'Blobs', {
      bucketName: blobBucketName(options.registryName, this.account, this.region),
      abortIncompleteUploadsAfterDays: options.abortIncompleteUploadsAfterDays,
      noncurrentVersionExpirationDays: options.noncurrentVersionExpirationDays,
    });

    new CfnOutput(this, 'BucketName', { value: this.blobs.bucket.bucketName, description: 'Replica of the blob bucket' });
  }
}
