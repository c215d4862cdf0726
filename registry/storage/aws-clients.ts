import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import type { AwsCredentialIdentity, Logger } from '@aws-sdk/types';
import type { RegistryConfig } from '../config/config.js';
import type { CallCounter } from './call-counter.js';

export interface AwsClients {
  dynamo: DynamoDBDocumentClient;
  s3: S3Client;
}

/**
 * What the SDK logs goes nowhere, as with its default NoOpLogger, but without an `info` method:
 * the SDK's logger middleware calls `logger?.info?.({ input: filter(input), output: filter(output) })`,
 * so for a logger that has one (NoOpLogger does) it builds a redacted copy of every call's input
 * and output (schemaLogFilter) only to discard it. About 0.1 ms of CPU per call (measured with
 * DynamoDB Local, 2026-12-02: 1.02 instead of 1.12 ms per GetItem), on every DynamoDB and S3 call.
 */
const DISCARDING_SDK_LOGGER = { debug() {}, warn() {}, error() {} } as unknown as Logger;

/**
 * `credentials` is for local stand-ins only; in AWS the function's role is used. `counter`
 * counts every call (call-counter.ts); without one nothing is counted.
 */
export function createAwsClients(config: RegistryConfig, credentials?: AwsCredentialIdentity, counter?: CallCounter): AwsClients {
  const dynamo = new DynamoDBClient({ region: config.region, endpoint: config.dynamoEndpoint, credentials, logger: DISCARDING_SDK_LOGGER });
  const s3 = new S3Client({
    region: config.region,
    logger: DISCARDING_SDK_LOGGER,
    credentials,
    endpoint: config.s3Endpoint,
    // Path-style addressing is what local stand-ins understand; virtual-hosted style is used in AWS.
    forcePathStyle: config.s3Endpoint !== undefined,
    // Digests are verified by the registry itself; the SDK's default CRC32 checksums would also
    // leak into presigned URLs and cost a second pass over every part.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  counter?.attach('DynamoDB', dynamo);
  counter?.attach('S3', s3);
  return {
    dynamo: DynamoDBDocumentClient.from(dynamo, { marshallOptions: { removeUndefinedValues: true } }),
    s3,
  };
}
