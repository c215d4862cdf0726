import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach } from 'vitest';

/**
 * aws-sdk-client-mock stand-ins for the registry's DynamoDB (document client) and S3 clients in
 * one test file: reset before each test, restored after the file.
 */
export function useAwsMocks() {
  const ddb = mockClient(DynamoDBDocumentClient);
  const s3 = mockClient(S3Client);
  afterAll(() => {
    ddb.restore();
    s3.restore();
  });
  beforeEach(() => {
    ddb.reset();
    s3.reset();
  });
  return { ddb, s3 };
}
