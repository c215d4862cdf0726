import * as iam from 'aws-cdk-lib/aws-iam';
import { BLOB_PREFIX, DIRECT_PREFIX, GC_STATE_PREFIX, MANIFEST_PREFIX, REGISTRY_PREFIXES, UPLOAD_STAGING_PREFIX } from './blob-bucket.js';
import { DELETION_PREFIX } from '../../registry/storage/keys.js';

/**
 * The IAM statements of the registry functions, in one place so that "least privilege" can be
 * reviewed at a glance. Only the actions the function code performs are granted, on the table
 * itself (there are no indexes yet) and on the registry's key prefixes in the bucket.
 */

/**
 * Read/write access of the primary registry function.
 * TransactWriteItems has no IAM action of its own: it needs the action of each item it contains
 * (PutItem, UpdateItem, DeleteItem, ConditionCheckItem).
 */
export function registryTableStatements(tableArn: string): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'RegistryTableReadWrite',
      actions: [
        'dynamodb:GetItem',
        'dynamodb:BatchGetItem',
        'dynamodb:Query',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
        'dynamodb:DeleteItem',
        'dynamodb:BatchWriteItem',
        'dynamodb:ConditionCheckItem',
      ],
      resources: [tableArn],
    }),
  ];
}

/** Object ARNs of the registry's key prefixes in a bucket. */
export function registryObjectArns(bucketArn: string, prefixes: readonly string[] = REGISTRY_PREFIXES): string[] {
  return prefixes.map((prefix) => `${bucketArn}/${prefix}*`);
}

/**
 * Read/write access of the primary registry function to its bucket.
 * - s3:GetObject also covers HeadObject and the presigned GET URLs the function signs.
 * - s3:PutObject covers PutObject, CreateMultipartUpload, UploadPart and CompleteMultipartUpload.
 * - s3:ListBucket is granted so that HeadObject/GetObject on a missing key answer 404 instead of
 *   403 (S3 hides whether a key exists from callers who cannot list the bucket); it cannot be
 *   narrowed with s3:prefix because that condition key is absent on those requests.
 */
export function registryBucketStatements(bucketArn: string): iam.PolicyStatement[] {
  return [...objectReadWriteStatements(bucketArn, REGISTRY_PREFIXES), ...directUploadStatements(bucketArn)];
}

/**
 * The prefixes the pull-through copier (functions/pull-through-copier.ts) writes: it stores a blob
 * as an upload does (the upload session's parts under `uploads/`, the blob under `blobs/`), and
 * never reads a manifest or an object the front door put under `direct/`.
 */
export const BLOB_COPY_PREFIXES = [BLOB_PREFIX, UPLOAD_STAGING_PREFIX] as const;

/** The copier's grant in the bucket: the API function's object actions, on BLOB_COPY_PREFIXES only. */
export function blobCopyBucketStatements(bucketArn: string): iam.PolicyStatement[] {
  return objectReadWriteStatements(bucketArn, BLOB_COPY_PREFIXES);
}

function objectReadWriteStatements(bucketArn: string, prefixes: readonly string[]): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'RegistryObjectsReadWrite',
      actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
      resources: registryObjectArns(bucketArn, prefixes),
    }),
    new iam.PolicyStatement({
      sid: 'RegistryBucketMissingKeysAre404',
      actions: ['s3:ListBucket'],
      resources: [bucketArn],
    }),
  ];
}

/**
 * What recording a blob the front door put under `direct/` needs in the bucket: reading it
 * (HeadObject with its checksum, presigned GETs) and deleting it when the same bytes are stored
 * already. Never PutObject: only CloudFront writes there (lib/constructs/front-door.ts).
 */
export function directUploadStatements(bucketArn: string): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({ sid: 'DirectUploadsReadDelete', actions: ['s3:GetObject', 's3:DeleteObject'], resources: directObjectArns(bucketArn) }),
  ];
}

export function directObjectArns(bucketArn: string): string[] {
  return registryObjectArns(bucketArn, [DIRECT_PREFIX]);
}

/**
 * The recorder of direct uploads (functions/direct-upload-recorder.ts): the session, blob and link
 * items (read, written, touched, the session deleted; TransactWriteItems of touch + link needs
 * UpdateItem and PutItem), and the objects under `direct/`.
 */
export function directUploadRecorderStatements(tableArn: string, bucketArn: string): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'DirectUploadRecords',
      actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
      resources: [tableArn],
      conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['UPLOAD#*', 'BLOB#*', 'REPO#*'] } },
    }),
    ...directUploadStatements(bucketArn),
    new iam.PolicyStatement({ sid: 'DirectUploadsMissingKeysAre404', actions: ['s3:ListBucket'], resources: [bucketArn] }),
  ];
}

/**
 * The scheduled maintenance run (functions/gc.ts): retention policies delete tags and manifests,
 * then garbage collection scans the whole table, deletes unreferenced blob records and expired
 * upload sessions, and updates the claims it makes on blobs.
 * TransactWriteItems is not an IAM action: retention's transactions consist of Delete items,
 * covered by DeleteItem, and the Put of each deletion's marker (registry/storage/deletion-markers.ts),
 * for which PutItem is granted on the markers' partitions only.
 */
export function maintenanceTableStatements(tableArn: string): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'MaintenanceTable',
      actions: ['dynamodb:Scan', 'dynamodb:Query', 'dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem'],
      resources: [tableArn],
    }),
    new iam.PolicyStatement({
      sid: 'MaintenanceDeletionMarkers',
      actions: ['dynamodb:PutItem'],
      resources: [tableArn],
      conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`${DELETION_PREFIX}*`] } },
    }),
  ];
}

/** The run-state objects of garbage collection, e.g. `<bucket ARN>/gc/*`. */
export function maintenanceStateObjectArns(bucketArn: string): string[] {
  return registryObjectArns(bucketArn, [GC_STATE_PREFIX]);
}

/**
 * Garbage collection in the bucket:
 * - lists the registry's prefixes (s3:ListBucket) and multipart uploads
 *   (s3:ListBucketMultipartUploads), reads object metadata (HeadObject is s3:GetObject), deletes
 *   unreferenced objects and aborts the multipart uploads of expired sessions;
 * - keeps its state between runs under `gc/` (read and written, never deleted).
 * No s3:PutObject on the registry's prefixes: maintenance never writes content.
 */
export function maintenanceBucketStatements(bucketArn: string): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'MaintenanceObjectsSweep',
      actions: ['s3:GetObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
      resources: registryObjectArns(bucketArn),
    }),
    new iam.PolicyStatement({
      sid: 'MaintenanceDirectUploadsSweep',
      actions: ['s3:GetObject', 's3:DeleteObject'],
      resources: directObjectArns(bucketArn),
    }),
    new iam.PolicyStatement({
      sid: 'MaintenanceRunState',
      actions: ['s3:GetObject', 's3:PutObject'],
      resources: maintenanceStateObjectArns(bucketArn),
    }),
    new iam.PolicyStatement({
      sid: 'MaintenanceBucketListing',
      actions: ['s3:ListBucket', 's3:ListBucketMultipartUploads'],
      resources: [bucketArn],
    }),
  ];
}

export interface ReplicaStorageArns {
  /** The global table's replica in the replica region. */
  readonly tableArn: string;
  /** The replica region's bucket (destination of S3 replication). */
  readonly localBucketArn: string;
  /** The primary region's bucket, for blobs that have not replicated yet. */
  readonly primaryBucketArn: string;
}

/** Read-only access of a replica-region function: it serves pulls and refuses pushes. */
export function replicaStorageStatements(arns: ReplicaStorageArns): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'ReplicaTableRead',
      actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query'],
      resources: [arns.tableArn],
    }),
    new iam.PolicyStatement({
      sid: 'ReplicaObjectsRead',
      actions: ['s3:GetObject'],
      resources: replicaReadableObjectArns(arns),
    }),
    new iam.PolicyStatement({
      sid: 'ReplicaBucketsMissingKeysAre404',
      actions: ['s3:ListBucket'],
      resources: [arns.localBucketArn, arns.primaryBucketArn],
    }),
  ];
}

export function replicaReadableObjectArns(arns: ReplicaStorageArns): string[] {
  const readable = [BLOB_PREFIX, MANIFEST_PREFIX, DIRECT_PREFIX];
  return [...registryObjectArns(arns.localBucketArn, readable), ...registryObjectArns(arns.primaryBucketArn, readable)];
}
