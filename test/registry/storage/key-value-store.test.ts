import { Readable } from 'node:stream';
import { CloudFrontKeyValueStoreClient } from '@aws-sdk/client-cloudfront-keyvaluestore';
import { describe, expect, it } from 'vitest';
import { keyValueStoreWriter } from '../../../registry/storage/key-value-store.js';

const ARN = 'arn:aws:cloudfront::123456789012:key-value-store/0f7d1d0e-1111-2222-3333-444455556666';

interface SeenRequest {
  method: string;
  hostname: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

describe('keyValueStoreWriter', () => {
  it('signs with SigV4a (the KeyValueStore API accepts nothing else) and updates the keys under the current ETag', async () => {
    const seen: SeenRequest[] = [];
    const client = new CloudFrontKeyValueStoreClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      // The requests as the SDK would send them, answered here: nothing leaves the machine.
      requestHandler: {
        handle: async (request: SeenRequest) => {
          seen.push(request);
          const body = JSON.stringify({ KvsARN: ARN, ItemCount: 0, TotalSizeInBytes: 0, Created: 0 });
          return {
            response: { statusCode: 200, headers: { 'content-type': 'application/json', etag: 'etag-1' }, body: Readable.from([Buffer.from(body)]) },
          };
        },
      } as never,
    });
    await keyValueStoreWriter(client)(ARN, { 'ticket-secrets': 't', 'origin-secret': 'o' });
    expect(seen).toHaveLength(2);
    for (const request of seen) {
      expect(request.headers.authorization).toMatch(/^AWS4-ECDSA-P256-SHA256 /);
      expect(request.hostname).toBe('123456789012.cloudfront-kvs.global.api.aws');
    }
    expect(seen[0]!.method).toBe('GET');
    expect(seen[1]!.method).toBe('POST');
    expect(seen[1]!.headers['if-match']).toBe('etag-1');
    expect(JSON.parse(seen[1]!.body!)).toEqual({
      Puts: [
        { Key: 'ticket-secrets', Value: 't' },
        { Key: 'origin-secret', Value: 'o' },
      ],
    });
  });
});
