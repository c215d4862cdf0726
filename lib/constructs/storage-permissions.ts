import * as iam from 'aws-cdk-lib/aws-iam';
import { MANIFEST_PREFIX, REGISTRY_PREFIXES, BLOB_PREFIX } from './blob-bucket.js';

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
  return [
    new iam.PolicyStatement({
      sid: 'RegistryObjectsReadWrite',
      actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
      resources: registryObjectArns(bucketArn),
    }),
    new iam.PolicyStatement({
      sid: 'RegistryBucketMissingKeysAre404',
      actions: ['s3:ListBucket'],
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
  const readable = [BLOB_PREFIX, MANIFEST_PREFIX];
  return [...registryObjectArns(arns.localBucketArn, readable), ...registryObjectArns(arns.primaryBucketArn, readable)];
}
