/**
 * Immutable tags and retention on the local stack (DynamoDB Local + s3rver), driven with raw
 * HTTP as a client would, and with the policy CLI as an operator would.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalRegistry, type LocalRegistry } from '../../scripts/local/local-registry.js';
import { LOCAL_CREDENTIALS } from '../../scripts/local/local-credentials.js';
import { runPolicyCli } from '../../scripts/registry-policy.js';
import { createAwsClients } from '../../registry/storage/aws-clients.js';
import { createServices, type RegistryServices } from '../../registry/services/services.js';
import { applyRetention } from '../../registry/services/policies/apply-retention.js';
import { OCI_INDEX, OCI_MANIFEST, RegistryHttp, errorCode, imageManifest, sha256 } from '../support/registry-http.js';

let dataDir: string;
let registry: LocalRegistry;
let http: RegistryHttp;
let services: RegistryServices;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'retention-'));
  registry = await startLocalRegistry({ dataDir, port: 0, quiet: true });
  http = new RegistryHttp(registry.url);
  // The same stores the registry uses, on the same table: what the maintenance Lambda gets.
  services = createServices(registry.config, createAwsClients(registry.config, LOCAL_CREDENTIALS));
});

afterAll(async () => {
  await registry?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** Runs the policy CLI in this process against the local registry; answers its exit code and output. */
async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runPolicyCli(['--local', '--data-dir', dataDir, ...args], { out: (line) => out.push(line), err: (line) => err.push(line) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

async function errorBody(response: Response): Promise<{ code: string; message: string; detail?: Record<string, unknown> }> {
  return ((await response.json()) as { errors: { code: string; message: string; detail?: Record<string, unknown> }[] }).errors[0]!;
}

async function digestOf(name: string, reference: string): Promise<string | null> {
  const response = await http.fetch(`/v2/${name}/manifests/${reference}`, { method: 'HEAD' });
  return response.status === 200 ? response.headers.get('docker-content-digest') : null;
}

async function tagsOf(name: string): Promise<string[]> {
  const response = await http.fetch(`/v2/${name}/tags/list`);
  return (((await response.json()) as { tags: string[] | null }).tags ?? []).sort();
}

/** An image manifest (config + one layer) pushed by digest only; answers its digest and bytes. */
async function pushUntagged(name: string, seed: string): Promise<{ digest: string; bytes: string }> {
  const config = await http.pushBlob(name, `{"seed":"${seed}"}`);
  const layer = await http.pushBlob(name, `layer of ${seed}`);
  const bytes = imageManifest(config, layer);
  const response = await http.putManifest(name, sha256(bytes), bytes);
  expect(response.status).toBe(201);
  return { digest: sha256(bytes), bytes };
}

function indexOf(...children: { digest: string; bytes: string }[]): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: children.map((child, position) => ({
      mediaType: OCI_MANIFEST,
      digest: child.digest,
      size: Buffer.byteLength(child.bytes),
      platform: { os: 'linux', architecture: `arch${position}` },
    })),
  });
}

async function pushReferrer(name: string, subject: { digest: string; bytes: string }, note: string): Promise<string> {
  const empty = await http.pushBlob(name, '{}');
  const bytes = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: 'application/vnd.example.signature',
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty, size: 2 },
    layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: empty, size: 2 }],
    subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: Buffer.byteLength(subject.bytes) },
    annotations: { note },
  });
  const response = await http.putManifest(name, sha256(bytes), bytes);
  expect(response.status).toBe(201);
  return sha256(bytes);
}

async function referrersOf(name: string, digest: string): Promise<string[]> {
  const response = await http.fetch(`/v2/${name}/referrers/${digest}`);
  return ((await response.json()) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest).sort();
}

describe('immutable tags', () => {
  it('refuses to overwrite an immutable tag with 403 DENIED naming the rule, and leaves the tag as it was', async () => {
    expect((await cli('immutable', 'add', 'immut/*', '--exclude', 'latest', '--exclude', 'dev-*')).code).toBe(0);
    const first = await http.pushImage('immut/app', 'v1', 'immut first');
    const second = await http.pushImage('immut/app', 'other', 'immut second');

    const overwrite = await http.putManifest('immut/app', 'v1', second.bytes);
    expect(overwrite.status).toBe(403);
    const error = await errorBody(overwrite);
    expect(error.code).toBe('DENIED');
    expect(error.message).toMatch(/^tag v1 of immut\/app is immutable \(rule immut\/\*\)/);
    expect(error.detail).toMatchObject({ repository: 'immut/app', tag: 'v1', rule: 'immut/*' });
    expect(await digestOf('immut/app', 'v1')).toBe(first.digest);
    expect(await tagsOf('immut/app')).toEqual(['other', 'v1']);

    // The same digest again is fine (clients re-push on retries).
    expect((await http.putManifest('immut/app', 'v1', first.bytes)).status).toBe(201);
    expect(await digestOf('immut/app', 'v1')).toBe(first.digest);
  });

  it('lets excluded tags move freely', async () => {
    const a = await http.pushImage('immut/excluded', 'latest', 'excluded a');
    const b = await http.pushImage('immut/excluded', 'dev-feature', 'excluded b');
    expect((await http.putManifest('immut/excluded', 'latest', b.bytes)).status).toBe(201);
    expect((await http.putManifest('immut/excluded', 'dev-feature', a.bytes)).status).toBe(201);
    expect(await digestOf('immut/excluded', 'latest')).toBe(b.digest);
    expect(await digestOf('immut/excluded', 'dev-feature')).toBe(a.digest);
    expect((await http.fetch('/v2/immut/excluded/manifests/latest', { method: 'DELETE' })).status).toBe(202);
  });

  it('refuses to delete an immutable tag, by tag and by the digest it names', async () => {
    const image = await http.pushImage('immut/delete', 'v1', 'immut delete');
    const byTag = await http.fetch('/v2/immut/delete/manifests/v1', { method: 'DELETE' });
    expect(byTag.status).toBe(403);
    expect((await errorBody(byTag)).message).toMatch(/^tag v1 of immut\/delete is immutable \(rule immut\/\*\); it cannot be deleted/);
    const byDigest = await http.fetch(`/v2/immut/delete/manifests/${image.digest}`, { method: 'DELETE' });
    expect(byDigest.status).toBe(403);
    expect(await errorCode(byDigest)).toBe('DENIED');
    expect(await digestOf('immut/delete', 'v1')).toBe(image.digest);
    // An immutable tag that does not exist is simply unknown.
    const absent = await http.fetch('/v2/immut/delete/manifests/v9', { method: 'DELETE' });
    expect(absent.status).toBe(404);
    // A manifest only mutable tags name can still be deleted by digest.
    await http.putManifest('immut/delete', 'latest', (await http.pushImage('immut/delete', 'dev-x', 'immut mutable')).bytes);
    const mutable = await digestOf('immut/delete', 'latest');
    expect((await http.fetch(`/v2/immut/delete/manifests/${mutable}`, { method: 'DELETE' })).status).toBe(202);
    expect(await tagsOf('immut/delete')).toEqual(['v1']);
  });

  it('lets exactly one of several concurrent pushes create a new immutable tag', async () => {
    const config = await http.pushBlob('immut/race', '{}');
    const layers = await Promise.all(Array.from({ length: 8 }, (_, i) => http.pushBlob('immut/race', `racing immutable layer ${i}`)));
    const manifests = layers.map((layer) => imageManifest(config, layer));
    const responses = await Promise.all(manifests.map((manifest) => http.putManifest('immut/race', 'release', manifest)));
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 201)).toHaveLength(1);
    expect(statuses.filter((status) => status === 403)).toHaveLength(manifests.length - 1);
    const winner = manifests[statuses.indexOf(201)]!;
    const get = await http.fetch('/v2/immut/race/manifests/release');
    expect(await get.text()).toBe(winner);
  });

  it('applies rule changes from the next push, without a restart', async () => {
    const a = await http.pushImage('later/app', 'v1', 'later a');
    const b = await http.pushImage('later/app', 'b', 'later b');
    expect((await cli('immutable', 'add', 'later/app')).code).toBe(0);
    expect((await http.putManifest('later/app', 'v1', b.bytes)).status).toBe(403);
    const listed = await cli('immutable', 'list');
    expect(listed.out).toContain('later/app\tevery tag');
    expect(listed.out).toContain('immut/*\texcept latest, dev-*');
    expect((await cli('immutable', 'remove', 'later/app')).code).toBe(0);
    expect((await http.putManifest('later/app', 'v1', b.bytes)).status).toBe(201);
    expect(await digestOf('later/app', 'v1')).toBe(b.digest);
    expect(await digestOf('later/app', a.digest)).toBe(a.digest);
    expect((await cli('immutable', 'remove', 'later/app')).code).toBe(1);
  });
});

describe('retention', () => {
  it('keeps the newest tags, removes the rest with their referrers, and reports first on a dry run', async () => {
    const images = [];
    for (let i = 1; i <= 6; i++) images.push(await http.pushImage('ret/app', `t${i}`, `retention ${i}`));
    const signature = await pushReferrer('ret/app', images[0]!, 'signs t1');
    const keptSignature = await pushReferrer('ret/app', images[5]!, 'signs t6');
    expect((await cli('retention', 'set', 'ret/app', '--keep-last', '3')).code).toBe(0);

    const dryRun = await cli('retention', 'dry-run', '--repository', 'ret/app');
    expect(dryRun.code).toBe(0);
    expect(dryRun.out).toMatch(/would delete tag t1 /);
    expect(dryRun.out).toContain(`would delete manifest ${signature}`);
    expect(dryRun.out).toContain('Dry run: would delete 3 tag(s) and 4 manifest(s)');
    expect(await tagsOf('ret/app')).toEqual(['t1', 't2', 't3', 't4', 't5', 't6']);

    const report = await applyRetention(services, { dryRun: false, repositories: ['ret/app'] });
    const repository = report.repositories[0]!;
    expect(repository.tags.map((tag) => [tag.tag, tag.outcome])).toEqual([
      ['t3', 'deleted'],
      ['t2', 'deleted'],
      ['t1', 'deleted'],
    ]);
    expect(repository.manifests.map((m) => m.digest).sort()).toEqual([images[0]!.digest, images[1]!.digest, images[2]!.digest, signature].sort());
    expect(report.totals).toMatchObject({ tagsDeleted: 3, manifestsDeleted: 4, skipped: 0, errors: 0 });

    expect(await tagsOf('ret/app')).toEqual(['t4', 't5', 't6']);
    for (const gone of [...images.slice(0, 3).map((image) => image.digest), signature]) expect(await digestOf('ret/app', gone)).toBeNull();
    for (const [position, image] of images.entries()) {
      if (position >= 3) expect(await (await http.fetch(`/v2/ret/app/manifests/t${position + 1}`)).text()).toBe(image.bytes);
    }
    expect(await referrersOf('ret/app', images[0]!.digest)).toEqual([]);
    expect(await referrersOf('ret/app', images[5]!.digest)).toEqual([keptSignature]);

    // A second run finds nothing more to do.
    const again = await applyRetention(services, { dryRun: false, repositories: ['ret/app'] });
    expect(again.totals).toMatchObject({ tagsDeleted: 0, manifestsDeleted: 0 });
  });

  it('never deletes the platform manifests of a surviving index; deletes them with their index; honours untagged', async () => {
    const name = 'ret/multi';
    const [amd, arm] = [await pushUntagged(name, 'amd'), await pushUntagged(name, 'arm')];
    const oldIndex = indexOf(amd, arm);
    expect((await http.putManifest(name, 'old', oldIndex, OCI_INDEX)).status).toBe(201);
    const [amd2, arm2] = [await pushUntagged(name, 'amd2'), await pushUntagged(name, 'arm2')];
    const newIndex = indexOf(amd2, arm2, amd);
    expect((await http.putManifest(name, 'new', newIndex, OCI_INDEX)).status).toBe(201);
    const orphan = await pushUntagged(name, 'orphan');
    await services.policies.putRetentionRule({ pattern: name, keepLast: 2, untagged: 'delete' });

    // With the default one-hour grace, fresh untagged manifests are safe.
    const fresh = await applyRetention(services, { dryRun: true, repositories: [name] });
    expect(fresh.repositories[0]!.manifests).toEqual([]);

    // Past the grace period: only the orphan goes; every child of a tagged index stays.
    const orphanRun = await applyRetention(services, { dryRun: false, repositories: [name], untaggedGraceMs: 0 });
    expect(orphanRun.repositories[0]!.manifests.map((m) => [m.digest, m.reason, m.outcome])).toEqual([[orphan.digest, 'untagged', 'deleted']]);
    for (const child of [amd, arm, amd2, arm2]) expect(await digestOf(name, child.digest)).toBe(child.digest);

    // Now keep only the newest tag: the old index goes, with arm; amd stays, the new index lists it.
    await services.policies.putRetentionRule({ pattern: name, keepLast: 1, untagged: 'keep' });
    const report = await applyRetention(services, { dryRun: false, repositories: [name] });
    const outcomes = report.repositories[0]!.manifests.map((m) => [m.digest, m.reason, m.outcome]);
    expect(outcomes).toEqual([
      [sha256(oldIndex), 'tags-removed', 'deleted'],
      [arm.digest, 'owner-removed', 'deleted'],
    ]);
    expect(await tagsOf(name)).toEqual(['new']);
    for (const child of [amd, amd2, arm2]) expect(await digestOf(name, child.digest)).toBe(child.digest);
    expect(await digestOf(name, arm.digest)).toBeNull();
    expect(await (await http.fetch(`/v2/${name}/manifests/new`)).text()).toBe(newIndex);
  });

  it('does not delete immutable tags', async () => {
    const name = 'immut/retained';
    for (let i = 1; i <= 3; i++) await http.pushImage(name, `v${i}`, `immutable retained ${i}`);
    await http.pushImage(name, 'dev-1', 'immutable retained dev 1');
    await http.pushImage(name, 'dev-2', 'immutable retained dev 2');
    await services.policies.putRetentionRule({ pattern: name, keepLast: 1, untagged: 'keep' });
    const report = await applyRetention(services, { dryRun: false, repositories: [name] });
    expect(report.repositories[0]!.tags.map((tag) => tag.tag)).toEqual(['dev-1']);
    expect(await tagsOf(name)).toEqual(['dev-2', 'v1', 'v2', 'v3']);
  });

  it('lets a push racing retention win: a re-pushed tag, a re-pushed manifest and a new index are left alone', async () => {
    const name = 'ret/race';
    const image = await http.pushImage(name, 'old', 'race old');
    const [tag] = await services.manifests.listTagRecords(name);
    const [manifestBefore] = (await services.manifests.listManifestRecords(name)).filter((m) => m.digest === image.digest);
    // The same digest pushed again under the same tag after retention looked: the tag stays.
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await http.putManifest(name, 'old', image.bytes)).status).toBe(201);
    expect(await services.manifests.deleteTagIfUnchanged(name, tag!)).toBe(false);
    expect(await services.manifests.deleteManifestIfUnchanged(name, manifestBefore!)).toBe(false);
    expect(await digestOf(name, 'old')).toBe(image.digest);

    // An untagged manifest that a new index lists after retention looked: it stays.
    const child = await pushUntagged(name, 'race child');
    const [childBefore] = (await services.manifests.listManifestRecords(name)).filter((m) => m.digest === child.digest);
    expect(childBefore!.referencedAt).toBeUndefined();
    expect((await http.putManifest(name, 'multi', indexOf(child), OCI_INDEX)).status).toBe(201);
    expect(await services.manifests.deleteManifestIfUnchanged(name, childBefore!)).toBe(false);
    expect(await digestOf(name, child.digest)).toBe(child.digest);

    // Unchanged, they go.
    const [current] = (await services.manifests.listTagRecords(name)).filter((t) => t.tag === 'old');
    expect(await services.manifests.deleteTagIfUnchanged(name, current!)).toBe(true);
  });

  it('refuses an index whose child retention deleted after the push checked it, instead of storing a dangling index', async () => {
    const name = 'ret/gone-child';
    const child = await pushUntagged(name, 'doomed child');
    const [record] = await services.manifests.listManifestRecords(name);
    expect(await services.manifests.deleteManifestIfUnchanged(name, record!)).toBe(true);
    // The handler's existence check ran before the delete: the transaction itself must refuse.
    const bytes = Buffer.from(indexOf(child));
    const index = { mediaType: OCI_INDEX, digest: sha256(bytes), size: bytes.length, bytes, blobDigests: [], childDigests: [child.digest] };
    await expect(services.manifests.putManifest(name, index, ['multi'], { blobs: [], unlinks: undefined })).rejects.toMatchObject({
      name: 'ChildManifestGoneError',
      digest: child.digest,
    });
    expect(await digestOf(name, 'multi')).toBeNull();
    const viaHttp = await http.putManifest(name, 'multi', indexOf(child), OCI_INDEX);
    expect(viaHttp.status).toBe(400);
    expect(await errorCode(viaHttp)).toBe('MANIFEST_UNKNOWN');
  });

  it('stops starting repositories at its deadline and says where', async () => {
    const report = await applyRetention(services, { dryRun: true, deadline: Date.now() - 1 });
    expect(report.repositories).toEqual([]);
    expect(report.stoppedBefore).toMatch(/^(immut|ret)\//);
  });

  it('manages policies with the CLI', async () => {
    const set = await cli(
      'retention',
      'set',
      'cli/*',
      '--keep-last',
      '10',
      '--only-matching',
      'v.*',
      '--delete-older-than',
      '7',
      '--untagged',
      'delete',
    );
    expect(set.code).toBe(0);
    expect(set.out).toContain(
      'Retention for every repository below cli/: only tags matching v.*; keep the 10 most recently pushed; and anything pushed in the last 7 day(s); delete untagged manifests.',
    );
    const listed = await cli('retention', 'list', '--json');
    expect(JSON.parse(listed.out)).toContainEqual({
      pattern: 'cli/*',
      keepLast: 10,
      onlyMatching: 'v.*',
      deleteOlderThanDays: 7,
      untagged: 'delete',
    });
    expect((await cli('retention', 'remove', 'cli/*')).code).toBe(0);
    expect((await cli('retention', 'remove', 'cli/*')).err).toContain('no retention policy for cli/*');

    const glob = await cli('retention', 'set', 'cli/glob', '--keep-last', '1', '--only-matching', 'v*');
    expect(glob.err).toMatch(/matched against the whole tag/);
    expect((await cli('retention', 'remove', 'cli/glob')).code).toBe(0);

    for (const bad of [
      ['retention', 'set', 'cli/x'],
      ['retention', 'set', 'Not A Pattern', '--keep-last', '1'],
      ['retention', 'set', 'cli/x', '--keep-last', 'many'],
      ['retention', 'set', 'cli/x', '--keep-last', '1', '--only-matching', 'v['],
      ['retention', 'set', 'cli/x', '--untagged', 'maybe'],
      ['retention', 'set', 'cli/x', '--keep-last', '1', '--exclude', 'x'],
      ['immutable', 'add', 'cli/x', '--exclude', '/[/'],
      ['retention', 'frobnicate'],
    ]) {
      const result = await cli(...bad);
      expect(result.code, bad.join(' ')).toBe(2);
    }
    expect(await runPolicyCli(['retention', 'list'], { out: () => undefined, err: () => undefined })).toBe(2);
  });
});
