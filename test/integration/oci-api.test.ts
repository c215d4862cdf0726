import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalRegistry, type LocalRegistry } from '../../scripts/local/local-registry.js';
import { OCI_INDEX, OCI_MANIFEST, RegistryHttp, errorCode, imageManifest, sha256 } from '../support/registry-http.js';

let dataDir: string;
let registry: LocalRegistry;
let http: RegistryHttp;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'oci-api-'));
  registry = await startLocalRegistry({ dataDir, port: 0, quiet: true });
  http = new RegistryHttp(registry.url);
});

afterAll(async () => {
  await registry?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

const MiB = 1024 * 1024;

function patterned(size: number, seed: number): Buffer {
  const bytes = Buffer.alloc(size + 4);
  for (let i = 0; i < size; i += 4) bytes.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return bytes.subarray(0, size);
}

async function followBlob(name: string, digest: string): Promise<Buffer> {
  const redirect = await http.fetch(`/v2/${name}/blobs/${digest}`);
  expect(redirect.status).toBe(307);
  const direct = await fetch(redirect.headers.get('location')!);
  expect(direct.status).toBe(200);
  return Buffer.from(await direct.arrayBuffer());
}

describe('base', () => {
  it('answers GET /v2/ with 200 and the API version header', async () => {
    const response = await http.fetch('/v2/');
    expect(response.status).toBe(200);
    expect(response.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
  });

  it('answers unknown paths and methods with OCI errors, never 500', async () => {
    const unknown = await http.fetch('/v2/a/nothing-here');
    expect(unknown.status).toBe(404);
    expect(await errorCode(unknown)).toBe('UNSUPPORTED');
    const wrongMethod = await http.fetch('/v2/a/tags/list', { method: 'POST' });
    expect(wrongMethod.status).toBe(405);
  });
});

describe('names and references', () => {
  it.each(['Upper/case', 'a//b', '-lead', 'trail-', 'a/b/', 'x'.repeat(256)])('refuses the name %s with NAME_INVALID', async (name) => {
    const response = await http.fetch(`/v2/${name}/tags/list`);
    expect(response.status).toBe(400);
    expect(await errorCode(response)).toBe('NAME_INVALID');
  });

  it('accepts multi-level names', async () => {
    const image = await http.pushImage('team/app/api', 'v1', 'multi');
    const response = await http.fetch('/v2/team/app/api/manifests/v1');
    expect(response.status).toBe(200);
    expect(response.headers.get('docker-content-digest')).toBe(image.digest);
  });

  it('refuses a malformed digest with DIGEST_INVALID', async () => {
    for (const digest of ['sha256:abc', `md5:${'a'.repeat(32)}`, `sha256:${'A'.repeat(64)}`]) {
      const response = await http.fetch(`/v2/names/blobs/${digest}`);
      expect(response.status).toBe(400);
      expect(await errorCode(response)).toBe('DIGEST_INVALID');
    }
  });

  it('refuses an invalid tag with MANIFEST_INVALID', async () => {
    const response = await http.putManifest('names', '.hidden', '{}');
    expect(response.status).toBe(400);
    expect(await errorCode(response)).toBe('MANIFEST_INVALID');
  });
});

describe('blobs', () => {
  it('uploads a blob in one POST and serves it by HEAD from metadata and by a 307 to S3', async () => {
    const bytes = patterned(3 * MiB + 17, 1);
    const digest = await http.pushBlob('blobs/one', bytes);
    const head = await http.fetch(`/v2/blobs/one/blobs/${digest}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(bytes.length));
    expect(head.headers.get('docker-content-digest')).toBe(digest);
    const redirect = await http.fetch(`/v2/blobs/one/blobs/${digest}`);
    expect(redirect.headers.get('docker-content-digest')).toBe(digest);
    expect(new URL(redirect.headers.get('location')!).searchParams.get('X-Amz-Expires')).toBe('300');
    expect((await followBlob('blobs/one', digest)).equals(bytes)).toBe(true);
  });

  it('does not let another repository read a blob by knowing its digest', async () => {
    const digest = await http.pushBlob('blobs/private', 'secret bytes');
    for (const method of ['GET', 'HEAD']) {
      const response = await http.fetch(`/v2/blobs/stranger/blobs/${digest}`, { method });
      expect(response.status).toBe(404);
    }
    const mount = await http.fetch(`/v2/blobs/stranger/blobs/uploads/?mount=${digest}`, { method: 'POST' });
    expect(mount.status).toBe(202);
  });

  it('stores a blob once however often and wherever it is pushed', async () => {
    const bytes = 'the same bytes twice';
    const first = await http.pushBlob('blobs/dup-a', bytes);
    const second = await http.pushBlob('blobs/dup-b', bytes);
    expect(second).toBe(first);
    const again = await http.pushBlob('blobs/dup-a', bytes);
    expect(again).toBe(first);
    expect((await followBlob('blobs/dup-b', first)).toString()).toBe(bytes);
  });

  it('refuses a one-shot upload whose bytes do not match the digest and stores nothing', async () => {
    const claimed = sha256('what was promised');
    const response = await http.fetch(`/v2/blobs/bad/blobs/uploads/?digest=${claimed}`, { method: 'POST', body: 'something else' });
    expect(response.status).toBe(400);
    expect(await errorCode(response)).toBe('DIGEST_INVALID');
    expect((await http.fetch(`/v2/blobs/bad/blobs/${claimed}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('unlinks a blob from one repository on DELETE and keeps it in the others', async () => {
    const digest = await http.pushBlob('blobs/del-a', 'shared for delete');
    await http.pushBlob('blobs/del-b', 'shared for delete');
    expect((await http.fetch(`/v2/blobs/del-a/blobs/${digest}`, { method: 'DELETE' })).status).toBe(202);
    expect((await http.fetch(`/v2/blobs/del-a/blobs/${digest}`, { method: 'HEAD' })).status).toBe(404);
    expect((await http.fetch(`/v2/blobs/del-b/blobs/${digest}`, { method: 'HEAD' })).status).toBe(200);
    const again = await http.fetch(`/v2/blobs/del-a/blobs/${digest}`, { method: 'DELETE' });
    expect(again.status).toBe(404);
    expect(await errorCode(again)).toBe('BLOB_UNKNOWN');
  });
});

describe('upload sessions', () => {
  it('takes a streamed PATCH, reports its status, and finishes with the last bytes on PUT', async () => {
    const head = patterned(7 * MiB + 3, 2);
    const last = patterned(1000, 3);
    const digest = sha256(Buffer.concat([head, last]));
    const location = await http.openUpload('uploads/stream');
    const patch = await http.fetch(location, { method: 'PATCH', body: head });
    expect(patch.status).toBe(202);
    expect(patch.headers.get('range')).toBe(`0-${head.length - 1}`);
    const status = await http.fetch(patch.headers.get('location')!);
    expect(status.status).toBe(204);
    expect(status.headers.get('range')).toBe(`0-${head.length - 1}`);
    expect(status.headers.get('location')).toBe(location);
    const put = await http.fetch(`${location}?digest=${digest}`, { method: 'PUT', body: last });
    expect(put.status).toBe(201);
    expect(put.headers.get('location')).toBe(`/v2/uploads/stream/blobs/${digest}`);
    expect(put.headers.get('docker-content-digest')).toBe(digest);
    expect((await followBlob('uploads/stream', digest)).equals(Buffer.concat([head, last]))).toBe(true);
  });

  it('assembles chunks smaller than S3 part minimum, in order, and refuses an out-of-order chunk with 416', async () => {
    const whole = patterned(11 * MiB + 5, 4);
    const chunkSize = 3 * MiB;
    const location = await http.openUpload('uploads/chunks');
    let offset = 0;
    while (offset < whole.length) {
      const chunk = whole.subarray(offset, offset + chunkSize);
      if (offset === chunkSize) {
        const skipped = await http.fetch(location, {
          method: 'PATCH',
          headers: { 'Content-Range': `${offset + 10}-${offset + 10 + chunk.length - 1}`, 'Content-Length': String(chunk.length) },
          body: chunk,
        });
        expect(skipped.status).toBe(416);
        expect(skipped.headers.get('range')).toBe(`0-${offset - 1}`);
      }
      const response = await http.fetch(location, {
        method: 'PATCH',
        headers: { 'Content-Range': `${offset}-${offset + chunk.length - 1}`, 'Content-Length': String(chunk.length) },
        body: chunk,
      });
      expect(response.status).toBe(202);
      offset += chunk.length;
      expect(response.headers.get('range')).toBe(`0-${offset - 1}`);
    }
    const digest = sha256(whole);
    expect((await http.fetch(`${location}?digest=${digest}`, { method: 'PUT' })).status).toBe(201);
    expect((await followBlob('uploads/chunks', digest)).equals(whole)).toBe(true);
  });

  it('refuses a chunk whose length does not match its Content-Range and keeps the session as it was', async () => {
    const location = await http.openUpload('uploads/short');
    const response = await http.fetch(location, { method: 'PATCH', headers: { 'Content-Range': '0-99' }, body: 'only ten b' });
    expect(response.status).toBe(400);
    expect(await errorCode(response)).toBe('BLOB_UPLOAD_INVALID');
    const status = await http.fetch(location);
    expect(status.headers.get('range')).toBe('0-0');
    const ok = await http.fetch(location, { method: 'PATCH', headers: { 'Content-Range': '0-9' }, body: 'only ten b' });
    expect(ok.status).toBe(202);
  });

  it('answers DIGEST_INVALID when the finished bytes do not match, and stores nothing under the digest', async () => {
    const location = await http.openUpload('uploads/mismatch');
    await http.fetch(location, { method: 'PATCH', body: 'actual bytes' });
    const claimed = sha256('claimed bytes');
    const put = await http.fetch(`${location}?digest=${claimed}`, { method: 'PUT' });
    expect(put.status).toBe(400);
    expect(await errorCode(put)).toBe('DIGEST_INVALID');
    expect((await http.fetch(`/v2/uploads/mismatch/blobs/${claimed}`, { method: 'HEAD' })).status).toBe(404);
    expect((await http.fetch(location)).status).toBe(404);
  });

  it('requires a digest to finish', async () => {
    const location = await http.openUpload('uploads/nodigest');
    const put = await http.fetch(location, { method: 'PUT' });
    expect(put.status).toBe(400);
    expect(await errorCode(put)).toBe('DIGEST_INVALID');
  });

  it('cancels on DELETE, after which the session is unknown', async () => {
    const location = await http.openUpload('uploads/cancel');
    await http.fetch(location, { method: 'PATCH', body: patterned(6 * MiB, 5) });
    expect((await http.fetch(location, { method: 'DELETE' })).status).toBe(204);
    const status = await http.fetch(location);
    expect(status.status).toBe(404);
    expect(await errorCode(status)).toBe('BLOB_UPLOAD_UNKNOWN');
  });

  it('does not answer for a session through another repository, or an invented one', async () => {
    const location = await http.openUpload('uploads/owner');
    const id = location.split('/').pop()!;
    expect((await http.fetch(`/v2/uploads/thief/blobs/uploads/${id}`)).status).toBe(404);
    expect((await http.fetch('/v2/uploads/owner/blobs/uploads/not-a-session')).status).toBe(404);
  });

  it('mounts a blob from a repository that holds it (201) and opens a session otherwise (202)', async () => {
    const digest = await http.pushBlob('mount/source', 'mountable bytes');
    const mounted = await http.fetch(`/v2/mount/target/blobs/uploads/?mount=${digest}&from=mount/source`, { method: 'POST' });
    expect(mounted.status).toBe(201);
    expect(mounted.headers.get('location')).toBe(`/v2/mount/target/blobs/${digest}`);
    expect((await http.fetch(`/v2/mount/target/blobs/${digest}`, { method: 'HEAD' })).status).toBe(200);
    const notThere = await http.fetch(`/v2/mount/other/blobs/uploads/?mount=${digest}&from=mount/empty`, { method: 'POST' });
    expect(notThere.status).toBe(202);
    expect(notThere.headers.get('location')).toMatch(/^\/v2\/mount\/other\/blobs\/uploads\//);
  });
});

describe('manifests', () => {
  it('stores the exact bytes and media type, by tag and by digest, with HEAD answering the same headers', async () => {
    const config = await http.pushBlob('man/exact', '{"os":"linux"}');
    const layer = await http.pushBlob('man/exact', 'layer');
    const bytes = `{ "schemaVersion": 2,\n  "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "config": {"mediaType":"application/vnd.docker.container.image.v1+json","digest":"${config}","size":14},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"${layer}","size":5}] }`;
    const put = await http.putManifest('man/exact', 'latest', bytes, 'application/vnd.docker.distribution.manifest.v2+json');
    expect(put.status).toBe(201);
    expect(put.headers.get('docker-content-digest')).toBe(sha256(bytes));
    expect(put.headers.get('location')).toBe(`/v2/man/exact/manifests/${sha256(bytes)}`);
    for (const reference of ['latest', sha256(bytes)]) {
      const get = await http.fetch(`/v2/man/exact/manifests/${reference}`);
      expect(get.status).toBe(200);
      expect(get.headers.get('content-type')).toBe('application/vnd.docker.distribution.manifest.v2+json');
      expect(await get.text()).toBe(bytes);
      const head = await http.fetch(`/v2/man/exact/manifests/${reference}`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe(String(Buffer.byteLength(bytes)));
      expect(head.headers.get('docker-content-digest')).toBe(sha256(bytes));
    }
  });

  it('answers MANIFEST_UNKNOWN for a missing tag or digest', async () => {
    for (const reference of ['nope', sha256('nope')]) {
      const response = await http.fetch(`/v2/man/exact/manifests/${reference}`);
      expect(response.status).toBe(404);
      expect(await errorCode(response)).toBe('MANIFEST_UNKNOWN');
    }
  });

  it('refuses a manifest referencing a blob not in the repository, even one that exists elsewhere', async () => {
    const config = await http.pushBlob('man/blobs', '{"os":"linux"}');
    const elsewhere = await http.pushBlob('man/elsewhere', 'layer only elsewhere');
    const response = await http.putManifest('man/blobs', 'v1', imageManifest(config, elsewhere));
    expect(response.status).toBe(400);
    expect(await errorCode(response)).toBe('MANIFEST_BLOB_UNKNOWN');
    expect((await http.fetch('/v2/man/blobs/manifests/v1')).status).toBe(404);
  });

  it('refuses invalid JSON, unsupported types and a digest reference that does not match', async () => {
    const notJson = await http.putManifest('man/invalid', 'v1', '{not json');
    expect(notJson.status).toBe(400);
    expect(await errorCode(notJson)).toBe('MANIFEST_INVALID');
    const wrongType = await http.putManifest('man/invalid', 'v1', '{"schemaVersion":2}', 'application/x-unknown');
    expect(await errorCode(wrongType)).toBe('MANIFEST_INVALID');
    const image = await http.pushImage('man/invalid', 'base', 'invalid');
    const byWrongDigest = await http.putManifest('man/invalid', sha256('other'), image.bytes);
    expect(byWrongDigest.status).toBe(400);
    expect(await errorCode(byWrongDigest)).toBe('DIGEST_INVALID');
    const byDigest = await http.putManifest('man/invalid', image.digest, image.bytes);
    expect(byDigest.status).toBe(201);
  });

  it('refuses a manifest over 4 MiB with 413 and keeps one just under 4 MiB byte for byte', async () => {
    const config = await http.pushBlob('man/big', '{}');
    const layer = await http.pushBlob('man/big', 'big layer');
    const fill = (size: number) => {
      const base = imageManifest(config, layer, { annotations: { fill: '' } });
      return base.replace('"fill":""', `"fill":"${'x'.repeat(size - base.length)}"`);
    };
    const tooBig = await http.putManifest('man/big', 'huge', fill(4 * MiB + 1));
    expect(tooBig.status).toBe(413);
    const large = fill(4 * MiB - 10);
    expect((await http.putManifest('man/big', 'large', large)).status).toBe(201);
    expect(await (await http.fetch('/v2/man/big/manifests/large')).text()).toBe(large);
  });

  it('accepts an index only when its child manifests are in the repository', async () => {
    const amd = await http.pushImage('man/index', 'amd64', 'amd');
    const arm = await http.pushImage('man/index', 'arm64', 'arm');
    const child = (image: { digest: string; bytes: string }, architecture: string) => ({
      mediaType: OCI_MANIFEST,
      digest: image.digest,
      size: Buffer.byteLength(image.bytes),
      platform: { os: 'linux', architecture },
    });
    const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [child(amd, 'amd64'), child(arm, 'arm64')] };
    expect((await http.putManifest('man/index', 'multi', index, OCI_INDEX)).status).toBe(201);
    const get = await http.fetch('/v2/man/index/manifests/multi');
    expect(get.headers.get('content-type')).toBe(OCI_INDEX);
    const missing = { ...index, manifests: [...index.manifests, { ...index.manifests[0], digest: sha256('absent') }] };
    const refused = await http.putManifest('man/index', 'broken', missing, OCI_INDEX);
    expect(refused.status).toBe(400);
    expect(await errorCode(refused)).toBe('MANIFEST_UNKNOWN');
  });

  it('never leaves a tag pointing at a missing manifest when pushes of one tag race', async () => {
    const config = await http.pushBlob('man/race', '{}');
    const layers = await Promise.all(Array.from({ length: 12 }, (_, i) => http.pushBlob('man/race', `racing layer ${i}`)));
    const manifests = layers.map((layer) => imageManifest(config, layer));
    const responses = await Promise.all(manifests.map((manifest) => http.putManifest('man/race', 'contested', manifest)));
    expect(responses.map((response) => response.status)).toEqual(responses.map(() => 201));
    const get = await http.fetch('/v2/man/race/manifests/contested');
    expect(get.status).toBe(200);
    const body = await get.text();
    expect(manifests).toContain(body);
    expect(get.headers.get('docker-content-digest')).toBe(sha256(body));
  });
});

describe('tags and catalog', () => {
  it('lists tags sorted, paged by n and last with a Link to the next page', async () => {
    const tags = ['v10', 'v2', 'B', 'a', 'latest', 'v1'];
    const image = await http.pushImage('list/tags', tags[0]!, 'tags');
    for (const tag of tags.slice(1)) expect((await http.putManifest('list/tags', tag, image.bytes)).status).toBe(201);
    const all = await (await http.fetch('/v2/list/tags/tags/list')).json();
    expect(all).toEqual({ name: 'list/tags', tags: [...tags].sort() });
    const first = await http.fetch('/v2/list/tags/tags/list?n=4');
    expect(((await first.json()) as { tags: string[] }).tags).toEqual([...tags].sort().slice(0, 4));
    const link = first.headers.get('link')!;
    expect(link).toMatch(/^<\/v2\/list\/tags\/tags\/list\?n=4&last=[^>]+>; rel="next"$/);
    const next = await http.fetch(link.slice(1, link.indexOf('>')));
    expect(((await next.json()) as { tags: string[] }).tags).toEqual([...tags].sort().slice(4));
    expect(next.headers.get('link')).toBeNull();
    const afterLast = await (await http.fetch('/v2/list/tags/tags/list?last=v10')).json();
    expect(afterLast).toEqual({ name: 'list/tags', tags: ['v2'] });
  });

  it('answers NAME_UNKNOWN for the tags of a repository that does not exist', async () => {
    const response = await http.fetch('/v2/list/never/tags/list');
    expect(response.status).toBe(404);
    expect(await errorCode(response)).toBe('NAME_UNKNOWN');
  });

  it('pages the catalog with n, last and Link', async () => {
    for (const name of ['cat/a', 'cat/b', 'cat/c']) await http.pushImage(name, 'v1', name);
    const everything = ((await (await http.fetch('/v2/_catalog?n=1000')).json()) as { repositories: string[] }).repositories;
    expect(everything).toEqual([...everything].sort());
    expect(everything).toEqual(expect.arrayContaining(['cat/a', 'cat/b', 'cat/c']));
    const page = await http.fetch('/v2/_catalog?n=1&last=cat/a');
    expect(await page.json()).toEqual({ repositories: ['cat/b'] });
    expect(page.headers.get('link')).toBe('</v2/_catalog?n=1&last=cat%2Fb>; rel="next"');
  });
});

describe('referrers', () => {
  it('lists the manifests whose subject is a digest, with artifactType and annotations, and filters', async () => {
    const subject = await http.pushImage('refs/app', 'v1', 'subject');
    const empty = await http.pushBlob('refs/app', '{}');
    const artifact = (artifactType: string, note: string) =>
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType,
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty, size: 2 },
        layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: empty, size: 2 }],
        subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: Buffer.byteLength(subject.bytes) },
        annotations: { note },
      });
    const signature = artifact('application/vnd.dev.cosign.artifact.sig.v1+json', 'signed');
    const sbom = artifact('application/spdx+json', 'sbom');
    for (const manifest of [signature, sbom]) {
      const put = await http.putManifest('refs/app', sha256(manifest), manifest);
      expect(put.status).toBe(201);
      expect(put.headers.get('oci-subject')).toBe(subject.digest);
    }
    const all = await http.fetch(`/v2/refs/app/referrers/${subject.digest}`);
    expect(all.status).toBe(200);
    expect(all.headers.get('content-type')).toBe(OCI_INDEX);
    const index = (await all.json()) as { manifests: { digest: string; artifactType: string; annotations: Record<string, string> }[] };
    expect(index.manifests.map((m) => m.digest).sort()).toEqual([sha256(signature), sha256(sbom)].sort());
    expect(index.manifests.find((m) => m.digest === sha256(sbom))).toMatchObject({
      artifactType: 'application/spdx+json',
      annotations: { note: 'sbom' },
    });
    const filtered = await http.fetch(`/v2/refs/app/referrers/${subject.digest}?artifactType=application/spdx%2Bjson`);
    expect(filtered.headers.get('oci-filters-applied')).toBe('artifactType');
    expect(((await filtered.json()) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest)).toEqual([sha256(sbom)]);
    expect((await http.fetch(`/v2/refs/app/manifests/${sha256(sbom)}`, { method: 'DELETE' })).status).toBe(202);
    const afterDelete = (await (await http.fetch(`/v2/refs/app/referrers/${subject.digest}`)).json()) as { manifests: unknown[] };
    expect(afterDelete.manifests).toHaveLength(1);
  });

  it('answers an empty index when nothing refers to a digest', async () => {
    const response = await http.fetch(`/v2/refs/app/referrers/${sha256('lonely')}`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
  });
});

describe('deletes', () => {
  it('removes only the tag when deleting by tag, and the manifest with its tags by digest', async () => {
    const image = await http.pushImage('del/app', 'keep', 'deletes');
    await http.putManifest('del/app', 'drop', image.bytes);
    expect((await http.fetch('/v2/del/app/manifests/drop', { method: 'DELETE' })).status).toBe(202);
    expect((await http.fetch('/v2/del/app/manifests/drop')).status).toBe(404);
    expect((await http.fetch(`/v2/del/app/manifests/${image.digest}`)).status).toBe(200);
    expect((await http.fetch(`/v2/del/app/manifests/${image.digest}`, { method: 'DELETE' })).status).toBe(202);
    expect((await http.fetch(`/v2/del/app/manifests/${image.digest}`)).status).toBe(404);
    expect((await http.fetch('/v2/del/app/manifests/keep')).status).toBe(404);
    expect(await (await http.fetch('/v2/del/app/tags/list')).json()).toEqual({ name: 'del/app', tags: [] });
    const missing = await http.fetch(`/v2/del/app/manifests/${image.digest}`, { method: 'DELETE' });
    expect(missing.status).toBe(404);
    expect(await errorCode(missing)).toBe('MANIFEST_UNKNOWN');
  });
});

describe('persistence', () => {
  it('keeps everything across a restart on the same data directory', async () => {
    const image = await http.pushImage('persist/app', 'v1', 'persist');
    await registry.stop();
    registry = await startLocalRegistry({ dataDir, port: 0, quiet: true });
    http = new RegistryHttp(registry.url);
    const get = await http.fetch('/v2/persist/app/manifests/v1');
    expect(await get.text()).toBe(image.bytes);
    expect((await followBlob('persist/app', image.layer)).toString()).toBe('layer bytes of persist');
  });
});
