/**
 * GC's listing of a prefix (BlobObjectStore.listByHexShards): as many calls as the objects
 * need, every key whose next character is lowercase hex exactly once, other keys never.
 */
import { describe, expect, it } from 'vitest';
import { BlobObjectStore } from '../../../registry/storage/blob-object-store.js';
import { FakeS3 } from '../services/gc/fakes.js';

async function listed(s3: FakeS3, prefix: string): Promise<{ keys: string[]; calls: number }> {
  let calls = 0;
  s3.before = ({ name }) => {
    if (name === 'ListObjectsCommand') calls++;
  };
  const keys: string[] = [];
  await new BlobObjectStore(s3.asClient(), 'bucket').listByHexShards(
    prefix,
    async (page) => {
      keys.push(...page.map((object) => object.key));
    },
    () => false,
  );
  return { keys, calls };
}

describe('listing a prefix for GC', () => {
  it('takes one call while the prefix fits in a page', async () => {
    const s3 = new FakeS3(() => 0);
    s3.pageSize = 1000;
    for (const id of ['0a', '7b', 'fc']) s3.putObject(`blobs/${id}`, 1);
    expect(await listed(s3, 'blobs/')).toEqual({ keys: ['blobs/0a', 'blobs/7b', 'blobs/fc'], calls: 1 });
  });

  it('lists the rest by hex shard past the first page, every key once, and skips keys not starting with hex', async () => {
    const s3 = new FakeS3(() => 0);
    s3.pageSize = 3;
    const expected: string[] = [];
    for (const shard of '0123456789abcdef') {
      for (let n = 0; n < (shard === '3' ? 5 : 2); n++) {
        s3.putObject(`blobs/${shard}${n}`, 1);
        expected.push(`blobs/${shard}${n}`);
      }
    }
    for (const odd of ['blobs/-x', 'blobs/Z9', 'blobs/g1', 'blobs/']) s3.putObject(odd, 1);
    const { keys, calls } = await listed(s3, 'blobs/');
    expect(keys.sort()).toEqual(expected.sort());
    expect(calls).toBeGreaterThan(16);
  });
});
