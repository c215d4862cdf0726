import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';

/**
 * SigV4 for the S3 origin, as CloudFront's origin access control signs origin requests: service
 * `s3`, the body not hashed (`x-amz-content-sha256: UNSIGNED-PAYLOAD`), every header the request
 * carries to S3 signed, the viewer's Authorization replaced. The signer is the AWS SDK's own.
 */
export interface OriginCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

class Sha256 {
  private readonly hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(toBuffer(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
  reset(): void {
    throw new Error('not needed');
  }
}

function toBuffer(data: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof data === 'string') return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/** The headers to add: x-amz-date, x-amz-content-sha256 and authorization. */
export async function signS3OriginRequest(input: {
  method: string;
  url: URL;
  headers: Record<string, string | string[]>;
  region: string;
  credentials: OriginCredentials;
}): Promise<Record<string, string>> {
  const signer = new SignatureV4({ service: 's3', region: input.region, credentials: input.credentials, sha256: Sha256, uriEscapePath: false });
  const headers: Record<string, string> = { host: input.url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' };
  for (const [name, value] of Object.entries(input.headers)) {
    if (name !== 'authorization' && name !== 'transfer-encoding') headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const signed = await signer.sign({
    method: input.method,
    protocol: input.url.protocol,
    hostname: input.url.hostname,
    port: input.url.port ? Number(input.url.port) : undefined,
    path: input.url.pathname,
    query: Object.fromEntries(input.url.searchParams),
    headers,
  });
  const { 'x-amz-date': date, authorization } = signed.headers;
  return { 'x-amz-date': date!, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', authorization: authorization! };
}
