import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledgeNag } from '../nag-acknowledgements.js';
import { BlobReplicationRole } from './blob-replication-role.js';
import { DIRECT_UPLOAD_PREFIX } from '../../registry/storage/keys.js';

/** Key prefixes the registry function writes (see registry/storage/keys.ts). */
export const BLOB_PREFIX = 'blobs/';
export const UPLOAD_STAGING_PREFIX = 'uploads/';
export const MANIFEST_PREFIX = 'manifests/';
export const REGISTRY_PREFIXES = [BLOB_PREFIX, UPLOAD_STAGING_PREFIX, MANIFEST_PREFIX] as const;
/**
 * Blobs the front door put straight into the bucket (docs/front-door.md): written by CloudFront
 * only, then read, recorded and collected like `blobs/`.
 */
export const DIRECT_PREFIX = DIRECT_UPLOAD_PREFIX;
/** Content that pulls read; upload staging objects are transient and stay in the primary region. */
export const REPLICATED_PREFIXES = [BLOB_PREFIX, MANIFEST_PREFIX, DIRECT_PREFIX] as const;
/**
 * Garbage collection's own state between runs (the orphan candidates it confirms on the next
 * run; registry/services/gc/sweep-objects.ts). Written by the maintenance function only, never
 * replicated.
 */
export const GC_STATE_PREFIX = 'gc/';

export interface BlobBucketProps {
  /** Deterministic physical name (see lib/naming.ts). */
  readonly bucketName: string;
  readonly abortIncompleteUploadsAfterDays: number;
  readonly noncurrentVersionExpirationDays: number;
  /**
   * Upload staging objects left behind by sessions that expired are deleted after this many days.
   * @default - no expiry of staging objects (replica buckets never receive any)
   */
  readonly staleUploadsExpireAfterDays?: number;
  /** Buckets in other regions that blobs and manifests are replicated to. */
  readonly replicas?: readonly BlobReplica[];
}

export interface BlobReplica {
  readonly region: string;
  readonly bucketName: string;
}

/**
 * The bucket holding blobs, upload staging objects and large manifests of one region.
 *
 * Private, S3-managed encryption, TLS 1.2+ only, versioned (S3 replication requires versioning
 * on both sides) and retained when the stack is deleted: images are the registry's data.
 * Clients reach objects only through presigned URLs that the registry function issues, so the
 * bucket has no CORS rules and no public access.
 */
export class BlobBucket extends Construct {
  readonly bucket: s3.Bucket;
  readonly replicationRole?: BlobReplicationRole;

  constructor(scope: Construct, id: string, props: BlobBucketProps) {
    super(scope, id);
    const replicas = props.replicas ?? [];

    if (replicas.length > 0) {
      this.replicationRole = new BlobReplicationRole(this, 'ReplicationRole', {
        sourceBucketName: props.bucketName,
        destinationBucketNames: replicas.map((replica) => replica.bucketName),
        replicatedPrefixes: REPLICATED_PREFIXES,
      });
    }

    this.bucket = new s3.Bucket(this, 'Bucket', {
      bucketName: props.bucketName,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: true,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: this.lifecycleRules(props),
      replicationRole: this.replicationRole?.role,
      replicationRules: this.replicationRules(replicas),
    });

    acknowledgeNag(
      this.bucket,
      'AwsSolutions-S1',
      'Clients only reach objects through the registry API: the function reads and writes them itself, and blob reads are 307 redirects to short-lived presigned URLs that the API access log and the EMF metrics (Pulls, BytesRedirected) record. ' +
        'S3 server access logs would need a second bucket and duplicate that record; enable CloudTrail S3 data events if an audit requires S3-side logs.',
    );
  }

  private lifecycleRules(props: BlobBucketProps): s3.LifecycleRule[] {
    const rules: s3.LifecycleRule[] = [
      {
        // Parts of abandoned pushes would otherwise be billed forever and are invisible in listings.
        id: 'abort-incomplete-multipart-uploads',
        abortIncompleteMultipartUploadAfter: Duration.days(props.abortIncompleteUploadsAfterDays),
      },
      {
        // Versioning exists for replication and as an undo window for deletes; old versions expire.
        id: 'expire-noncurrent-versions',
        noncurrentVersionExpiration: Duration.days(props.noncurrentVersionExpirationDays),
        expiredObjectDeleteMarker: true,
      },
    ];
    if (props.staleUploadsExpireAfterDays !== undefined) {
      rules.push({
        id: 'expire-stale-upload-staging-objects',
        prefix: UPLOAD_STAGING_PREFIX,
        expiration: Duration.days(props.staleUploadsExpireAfterDays),
      });
    }
    return rules;
  }

  private replicationRules(replicas: readonly BlobReplica[]): s3.ReplicationRule[] | undefined {
    if (replicas.length === 0) return undefined;
    // Several rules need distinct priorities; they never conflict (one destination per rule pair).
    let priority = 0;
    return replicas.flatMap(({ region, bucketName }) => {
      const destination = s3.Bucket.fromBucketName(this, `ReplicaBucket-${region}`, bucketName);
      return REPLICATED_PREFIXES.map((prefix) => ({
        id: `${prefix.replace('/', '')}-to-${region}`,
        destination,
        filter: { prefix },
        // Deleted blobs and manifests must disappear from the replicas as well.
        deleteMarkerReplication: true,
        priority: priority++,
      }));
    });
  }
}
