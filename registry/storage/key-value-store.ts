// The KeyValueStore API signs with SigV4a, which the SDK does only with a SigV4a signer loaded:
// the pure-JavaScript one (no native CRT module to bundle for Lambda).
import '@aws-sdk/signature-v4a';
import { CloudFrontKeyValueStoreClient, DescribeKeyValueStoreCommand, UpdateKeysCommand } from '@aws-sdk/client-cloudfront-keyvaluestore';

/**
 * Writes keys of a CloudFront KeyValueStore (the front door's secrets, docs/front-door.md) in one
 * UpdateKeys call, conditional on the store's current ETag as the API requires.
 */
export function keyValueStoreWriter(
  client: Pick<CloudFrontKeyValueStoreClient, 'send'> = new CloudFrontKeyValueStoreClient({ region: 'us-east-1' }),
) {
  return async (arn: string, values: Record<string, string>): Promise<void> => {
    const { ETag } = await client.send(new DescribeKeyValueStoreCommand({ KvsARN: arn }));
    await client.send(new UpdateKeysCommand({ KvsARN: arn, IfMatch: ETag, Puts: Object.entries(values).map(([Key, Value]) => ({ Key, Value })) }));
  };
}
