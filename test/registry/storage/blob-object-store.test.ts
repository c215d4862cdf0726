import { createHash } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BlobObjectStore } from '../../../registry/storage/blob-object-store.js';

interface Sent {
  headers: Record<string, string>;
}

/**
 * An S3 client whose requests never leave the process: the request handler records what the
 * SDK would send (after signing), and the SHA-256 constructor counts the bytes the SDK hashes.
 */
function recordingClient(endpoint: string) {
  const sent: Sent[] = [];
  let hashedBytes = 0;
  class CountingSha256 {
    private readonly hash = createHash('sha256');
    constructor(private readonly secret?: Uint8Array | string) {
      if (secret !== undefined) this.hash = createHash('sha256');
    }
    update(data: Uint8Array | string): void {
      // Only payload hashing is counted: HMAC signing keys (the constructor's secret) are tiny.
      if (this.secret === undefined) hashedBytes += typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
      this.hash.update(data);
    }
    async digest(): Promise<Uint8Array> {
      return this.hash.digest();
    }
  }
  const s3 = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    sha256: CountingSha256 as never,
    requestHandler: {
      handle: async (request: { headers: Record<string, string> }) => {
        sent.push({ headers: { ...request.headers } });
        return { response: { statusCode: 200, headers: { etag: '"part-etag"' }, body: Readable.from([]) } };
      },
    } as never,
  });
  return { store: new BlobObjectStore(s3, 'bucket'), sent, hashedBytes: () => hashedBytes };
}

describe('BlobObjectStore uploads', () => {
  const body = new Uint8Array(1024 * 1024).fill(7);

  it.each(['https://s3.example.com', 'http://127.0.0.1:9', 'http://localhost:9', 'http://[::1]:9'])(
    'over HTTPS or to a loopback address (the local stand-in), sends UploadPart and PutObject bodies unsigned: the SDK does not hash them (%s)',
    async (endpoint) => {
      const { store, sent, hashedBytes } = recordingClient(endpoint);
      expect(await store.uploadPart('blobs/x', 'upload-1', 1, body)).toBe('"part-etag"');
      await store.putBytes('uploads/x/tail-1', body);
      expect(sent.map((request) => request.headers['x-amz-content-sha256'])).toEqual(['UNSIGNED-PAYLOAD', 'UNSIGNED-PAYLOAD']);
      expect(sent.every((request) => request.headers.authorization?.startsWith('AWS4-HMAC-SHA256'))).toBe(true);
      expect(hashedBytes()).toBeLessThan(body.byteLength);
    },
  );

  it.each(['http://s3.internal.example:9', 'http://10.0.0.5:9', 'http://127.0.0.1.example.com:9'])(
    'over plain HTTP to another host (%s), keeps the payload signed, which hashes every byte',
    async (endpoint) => {
      const { store, sent, hashedBytes } = recordingClient(endpoint);
      await store.uploadPart('blobs/x', 'upload-1', 1, body);
      expect(sent[0]!.headers['x-amz-content-sha256']).toBe(createHash('sha256').update(body).digest('hex'));
      expect(hashedBytes()).toBeGreaterThanOrEqual(body.byteLength);
    },
  );
});
