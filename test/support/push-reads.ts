/**
 * What a manifest push's one BatchGetItem finds (ManifestStore.readForPush), for tests that mock
 * DynamoDB: the links of `digests` in `repository`, and the immutable-rules snapshot (no rules)
 * in every shard, as a registry that has one holds it.
 */
import { EPOCH_SHARDS } from '../../registry/storage/gc-epoch.js';
import { keys } from '../../registry/storage/keys.js';

export function pushReads(table: string, repository: string, ...digests: string[]) {
  const links = digests.map((digest) => ({ ...keys.blobLink(repository, digest), digest, size: 1, objectKey: `blobs/${digest}` }));
  const snapshots = Array.from({ length: EPOCH_SHARDS }, (_, shard) => ({ ...keys.immutableSnapshot(shard), rules: [], version: 1 }));
  return { Responses: { [table]: [...links, ...snapshots] } };
}
