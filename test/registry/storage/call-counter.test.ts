import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallCounter } from '../../../registry/storage/call-counter.js';

const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
let server: Server;
let endpoint: string;
const bodies: Record<string, unknown>[] = [];

beforeAll(async () => {
  // Answers every DynamoDB call with an empty item and one consumed unit.
  server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      bodies.push(JSON.parse(body || '{}') as Record<string, unknown>);
      response.writeHead(200, { 'Content-Type': 'application/x-amz-json-1.0' });
      response.end(JSON.stringify({ ConsumedCapacity: { TableName: 't', CapacityUnits: 1 } }));
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('the call counter', () => {
  it('counts DynamoDB calls by operation with the capacity they consumed, asking DynamoDB to report it', async () => {
    const counter = new CallCounter();
    const dynamo = new DynamoDBClient({ region: 'us-east-1', endpoint, credentials });
    counter.attach('DynamoDB', dynamo);
    await dynamo.send(new GetItemCommand({ TableName: 't', Key: { PK: { S: 'a' } } }));
    await dynamo.send(new GetItemCommand({ TableName: 't', Key: { PK: { S: 'b' } } }));
    expect(counter.take()).toEqual({ calls: { 'DynamoDB.GetItem': 2 }, consumedCapacity: 2 });
    expect(bodies.at(-1)).toMatchObject({ ReturnConsumedCapacity: 'TOTAL' });
    // A take starts a new count.
    expect(counter.take()).toEqual({ calls: {}, consumedCapacity: 0 });
    dynamo.destroy();
  });

  it('does not count a presigned URL: no request is sent', async () => {
    const counter = new CallCounter();
    const s3 = new S3Client({ region: 'us-east-1', endpoint, credentials, forcePathStyle: true });
    counter.attach('S3', s3);
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: 'b', Key: 'k' }), { expiresIn: 60 });
    expect(url).toContain('X-Amz-Signature');
    expect(counter.take().calls).toEqual({});
    s3.destroy();
  });
});
