import { HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { keys } from './keys.js';

/**
 * The cheapest reads that prove each store answers this process with its permissions: an
 * eventually consistent GetItem of a key that is never written (0.5 read units), and HeadBucket
 * (the function holds s3:ListBucket on its bucket; a missing bucket answers 404, a missing
 * permission 403). Neither reads any registry data.
 */
export class HealthProbe {
  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly s3: S3Client,
    private readonly bucketName: string,
  ) {}

  async metadata(signal: AbortSignal): Promise<void> {
    await this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.healthProbe(), ConsistentRead: false }), { abortSignal: signal });
  }

  async blobs(signal: AbortSignal): Promise<void> {
    await this.s3.send(new HeadBucketCommand({ Bucket: this.bucketName }), { abortSignal: signal });
  }
}
