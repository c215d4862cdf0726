/**
 * The DynamoDB and S3 calls a request makes are its latency and its bill in AWS (docs/storage.md,
 * "Access patterns"): these tests count them with the registry's own SDK middleware
 * (registry/storage/call-counter.ts) on the local stack, so that a change that adds a call fails.
 */
import { describe, expect, it } from 'vitest';
import { collectGarbage } from '../../registry/services/gc/index.js';
import { createAwsClients } from '../../registry/storage/aws-clients.js';
import { PolicyStore } from '../../registry/storage/policy-store.js';
import { LOCAL_CREDENTIALS } from '../../scripts/local/local-credentials.js';
import { errorCode, imageManifest, sha256 } from '../support/registry-http.js';
import { expectStatus, useCallCountingStack } from '../support/call-counting.js';

const stack = useCallCountingStack('call-counts');
const { callsOf } = stack;

/** A config and three layers pushed to `name`, and the manifest naming them (not pushed). */
async function blobsAndManifest(name: string, seed: string): Promise<{ manifest: string; layer: string }> {
  const config = await stack.http.pushBlob(name, `{"architecture":"amd64","os":"linux","seed":"${seed}"}`);
  const layers = [];
  for (let n = 1; n <= 3; n++) layers.push(await stack.http.pushBlob(name, `layer ${n} of ${seed}`));
  const manifest = JSON.stringify({
    ...JSON.parse(imageManifest(config, layers[0]!)),
    layers: layers.map((digest) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: 10 })),
  });
  return { manifest, layer: layers[0]! };
}

describe('calls per request', () => {
  it('pulls read one item per request: a manifest GET by tag, a blob HEAD and a blob GET', async () => {
    const { manifest, layer } = await blobsAndManifest('calls/pull', 'pull');
    await expectStatus(stack.http.putManifest('calls/pull', 'v1', manifest), 201);

    expect(await callsOf(() => expectStatus(stack.http.fetch('/v2/calls/pull/manifests/v1', { method: 'HEAD' }), 200))).toEqual({
      'DynamoDB.GetItem': 1,
    });
    let body = '';
    expect(
      await callsOf(async () => {
        body = await (await expectStatus(stack.http.fetch('/v2/calls/pull/manifests/v1'), 200)).text();
      }),
    ).toEqual({ 'DynamoDB.GetItem': 1 });
    expect(body).toBe(manifest);
    expect(await callsOf(() => expectStatus(stack.http.fetch(`/v2/calls/pull/blobs/${layer}`, { method: 'HEAD' }), 200))).toEqual({
      'DynamoDB.GetItem': 1,
    });
    expect(await callsOf(() => expectStatus(stack.http.fetch(`/v2/calls/pull/blobs/${layer}`), 307))).toEqual({ 'DynamoDB.GetItem': 1 });
    // A GET that misses reads again, strongly consistent, before answering 404; a HEAD (what a
    // pusher asks before uploading) reads once, strongly.
    const unknown = sha256('never pushed');
    expect(await callsOf(() => expectStatus(stack.http.fetch(`/v2/calls/pull/blobs/${unknown}`), 404))).toEqual({ 'DynamoDB.GetItem': 2 });
    expect(await callsOf(() => expectStatus(stack.http.fetch(`/v2/calls/pull/blobs/${unknown}`, { method: 'HEAD' }), 404))).toEqual({
      'DynamoDB.GetItem': 1,
    });
  });

  it('a manifest PUT by tag on a warm instance is one read and one transaction; a tag DELETE one transaction', async () => {
    const first = await blobsAndManifest('calls/push', 'first');
    // The first tagged push of a process also reads the immutable rules once.
    await expectStatus(stack.http.putManifest('calls/push', 'v1', first.manifest), 201);
    const second = await blobsAndManifest('calls/push', 'second');
    expect(await callsOf(() => expectStatus(stack.http.putManifest('calls/push', 'v2', second.manifest), 201))).toEqual({
      'DynamoDB.BatchGetItem': 1,
      'DynamoDB.TransactWriteItems': 1,
    });
    expect(await callsOf(() => expectStatus(stack.http.fetch('/v2/calls/push/manifests/v2', { method: 'DELETE' }), 202))).toEqual({
      'DynamoDB.TransactWriteItems': 1,
    });
    expect((await stack.http.fetch('/v2/calls/push/manifests/v2')).status).toBe(404);
  });

  it('applies an immutable rule written elsewhere from the next request on, though pushes do not read the rules', async () => {
    const first = await blobsAndManifest('calls/locked', 'a');
    const second = await blobsAndManifest('calls/locked', 'b');
    await expectStatus(stack.http.putManifest('calls/locked', 'v1', first.manifest), 201);
    // Another process (the policy CLI) adds the rule; this registry has the rules in memory.
    const policies = new PolicyStore(stack.clients.dynamo, stack.registry.config.tableName);
    await policies.putImmutableRule({ pattern: 'calls/locked', excludes: ['latest'] });

    const overwrite = await stack.http.putManifest('calls/locked', 'v1', second.manifest);
    expect(overwrite.status).toBe(403);
    expect(await errorCode(overwrite)).toBe('DENIED');
    const removal = await stack.http.fetch('/v2/calls/locked/manifests/v1', { method: 'DELETE' });
    expect(removal.status).toBe(403);
    expect(await (await stack.http.fetch('/v2/calls/locked/manifests/v1')).text()).toBe(first.manifest);
    // An excluded tag stays mutable, and once the rule is gone v1 may go too.
    await expectStatus(stack.http.putManifest('calls/locked', 'latest', first.manifest), 201);
    await expectStatus(stack.http.putManifest('calls/locked', 'latest', second.manifest), 201);
    expect(await policies.removeImmutableRule('calls/locked')).toBe(true);
    await expectStatus(stack.http.fetch('/v2/calls/locked/manifests/v1', { method: 'DELETE' }), 202);
  });

  it('garbage collection with nothing to delete makes calls in proportion to the data, not to key shards', async () => {
    const gc = createAwsClients(stack.registry.config, LOCAL_CREDENTIALS, stack.counter);
    const calls = await callsOf(() =>
      collectGarbage({ dynamo: gc.dynamo, s3: gc.s3, tableName: stack.registry.config.tableName, bucketName: stack.registry.config.bucketName }),
    );
    gc.dynamo.destroy();
    gc.s3.destroy();
    // One page of the table, one listing each of uploads/, manifests/, blobs/ and direct/ (the
    // front door's monolithic uploads, swept like blob objects).
    expect(calls).toMatchObject({ 'DynamoDB.Scan': 1, 'S3.ListObjects': 4 });
  });
});
