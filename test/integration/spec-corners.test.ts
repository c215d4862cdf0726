/**
 * The corners of distribution-spec v1.1.1 and its merged changes, over raw HTTP against the
 * local registry, following the blob redirect to the S3 stand-in where a client would.
 */
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { PolicyStore } from '../../registry/storage/policy-store.js';
import { MAX_TAGS_PER_PUSH } from '../../registry/services/manifests/manifest-service.js';
import { OCI_INDEX, OCI_MANIFEST, imageManifest, sha256 } from '../support/registry-http.js';
import { useLocalStack } from './local-stack.js';

const stack = useLocalStack('spec-corners');

beforeAll(async () => {
  await new PolicyStore(stack.clients.dynamo, stack.registry.config.tableName).putImmutableRule({ pattern: 'corners/immutable', excludes: [] });
});

function sha512(bytes: Uint8Array | string): string {
  return `sha512:${createHash('sha512').update(bytes).digest('hex')}`;
}

async function code(response: Response): Promise<string | undefined> {
  return ((await response.json()) as { errors?: { code: string }[] }).errors?.[0]?.code;
}

describe('references that cannot exist', () => {
  it.each(['.INVALID_MANIFEST_NAME', 'sha256:not-hex', `${'t'.repeat(129)}`, 'sha999:abc'])(
    'GET and HEAD of %s answer 404 MANIFEST_UNKNOWN',
    async (reference) => {
      const get = await stack.http.fetch(`/v2/corners/app/manifests/${reference}`);
      expect(get.status).toBe(404);
      expect(await code(get)).toBe('MANIFEST_UNKNOWN');
      expect((await stack.http.fetch(`/v2/corners/app/manifests/${reference}`, { method: 'HEAD' })).status).toBe(404);
    },
  );

  it('a push to such a tag stays 400 MANIFEST_INVALID', async () => {
    const refused = await stack.http.putManifest('corners/app', '.INVALID_MANIFEST_NAME', imageManifest(sha256('c'), sha256('l')));
    expect(refused.status).toBe(400);
    expect(await code(refused)).toBe('MANIFEST_INVALID');
  });
});

describe('sha512 content', () => {
  it('stores, serves, mounts and deletes a sha512 blob like any other, opened with ?digest-algorithm=sha512', async () => {
    const bytes = Buffer.from('a sha512 layer '.repeat(1000));
    const digest = sha512(bytes);
    const opened = await stack.http.fetch('/v2/corners/sha512/blobs/uploads/?digest-algorithm=sha512', { method: 'POST' });
    expect(opened.status).toBe(202);
    const location = new URL(opened.headers.get('location')!, stack.registry.url);
    const patched = await stack.http.fetch(location.href, { method: 'PATCH', body: bytes.subarray(0, 7000), headers: { 'Content-Range': '0-6999' } });
    expect(patched.status).toBe(202);
    const next = new URL(patched.headers.get('location')!, stack.registry.url);
    next.searchParams.set('digest', digest);
    const finished = await stack.http.fetch(next.href, { method: 'PUT', body: bytes.subarray(7000) });
    expect(finished.status).toBe(201);
    expect(finished.headers.get('docker-content-digest')).toBe(digest);

    const head = await stack.http.fetch(`/v2/corners/sha512/blobs/${digest}`, { method: 'HEAD' });
    expect(head.headers.get('docker-content-digest')).toBe(digest);
    expect(head.headers.get('content-length')).toBe(String(bytes.length));
    const redirect = await stack.http.fetch(`/v2/corners/sha512/blobs/${digest}`);
    expect(redirect.status).toBe(307);
    expect(redirect.headers.get('docker-content-digest')).toBe(digest);
    expect(Buffer.from(await (await fetch(redirect.headers.get('location')!)).arrayBuffer()).equals(bytes)).toBe(true);

    const mounted = await stack.http.fetch(`/v2/corners/sha512-mounted/blobs/uploads/?mount=${digest}&from=corners/sha512`, { method: 'POST' });
    expect(mounted.status).toBe(201);
    expect((await stack.http.fetch(`/v2/corners/sha512-mounted/blobs/${digest}`, { method: 'DELETE' })).status).toBe(202);
    expect((await stack.http.fetch(`/v2/corners/sha512-mounted/blobs/${digest}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('refuses an unknown ?digest-algorithm with 400 DIGEST_INVALID', async () => {
    const refused = await stack.http.fetch('/v2/corners/sha512/blobs/uploads/?digest-algorithm=md5', { method: 'POST' });
    expect(refused.status).toBe(400);
    expect(await code(refused)).toBe('DIGEST_INVALID');
  });

  it('takes a manifest pushed by its sha512 digest, serves and deletes it by that digest, as an index child and a subject', async () => {
    const repo = 'corners/sha512-manifests';
    const config = await stack.http.pushBlob(repo, '{"os":"linux"}');
    const layer = await stack.http.pushBlob(repo, 'sha512 manifest layer');
    const child = imageManifest(config, layer);
    const childDigest = sha512(child);
    const pushed = await stack.http.putManifest(repo, `${childDigest}?tag=by-sha512`, child);
    expect(pushed.status).toBe(201);
    expect(pushed.headers.get('docker-content-digest')).toBe(childDigest);
    for (const reference of [childDigest, 'by-sha512']) {
      const got = await stack.http.fetch(`/v2/${repo}/manifests/${reference}`);
      expect(got.status).toBe(200);
      expect(got.headers.get('docker-content-digest')).toBe(childDigest);
      expect(await got.text()).toBe(child);
    }

    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: childDigest, size: Buffer.byteLength(child) }],
    });
    expect((await stack.http.putManifest(repo, 'multi', index, OCI_INDEX)).status).toBe(201);
    const signature = imageManifest(config, config, {
      artifactType: 'application/vnd.example.signature',
      subject: { mediaType: OCI_MANIFEST, digest: childDigest, size: Buffer.byteLength(child) },
    });
    const signed = await stack.http.putManifest(repo, sha256(signature), signature);
    expect(signed.headers.get('oci-subject')).toBe(childDigest);
    const referrers = (await (await stack.http.fetch(`/v2/${repo}/referrers/${childDigest}`)).json()) as { manifests: { digest: string }[] };
    expect(referrers.manifests.map((entry) => entry.digest)).toEqual([sha256(signature)]);

    // A sha512 reference that does not match the bytes stores nothing.
    expect((await stack.http.putManifest(repo, sha512('other bytes'), child)).status).toBe(400);
    expect((await stack.http.fetch(`/v2/${repo}/manifests/${sha256(index)}`, { method: 'DELETE' })).status).toBe(202);
    expect((await stack.http.fetch(`/v2/${repo}/manifests/${childDigest}`, { method: 'DELETE' })).status).toBe(202);
    expect((await stack.http.fetch(`/v2/${repo}/manifests/${childDigest}`, { method: 'HEAD' })).status).toBe(404);
  });
});

describe('range reads through the redirect', () => {
  const bytes = Buffer.from(Array.from({ length: 1024 }, (_, i) => i % 251));
  let location: string;

  beforeAll(async () => {
    const digest = await stack.http.pushBlob('corners/ranges', bytes);
    const redirect = await stack.http.fetch(`/v2/corners/ranges/blobs/${digest}`);
    location = redirect.headers.get('location')!;
  });

  it.each([
    ['bytes=500-1499', 206, 500, 1024],
    ['bytes=500-', 206, 500, 1024],
    ['bytes=-500', 206, 524, 1024],
    ['bytes=-5000', 206, 0, 1024],
    ['bytes=0-0', 206, 0, 1],
  ])('%s answers %i with exactly those bytes', async (range, status, from, to) => {
    const response = await fetch(location, { headers: { Range: range } });
    expect(response.status).toBe(status);
    expect(Buffer.from(await response.arrayBuffer()).equals(bytes.subarray(from, to))).toBe(true);
    expect(response.headers.get('content-range')).toBe(`bytes ${from}-${to - 1}/1024`);
  });

  it.each(['bytes=5000-10000', 'bytes=500-0', 'bytes=1024-', 'bytes=-0'])('%s is unsatisfiable: 416', async (range) => {
    expect((await fetch(location, { headers: { Range: range } })).status).toBe(416);
  });
});

describe('several tags in one push', () => {
  it('points every ?tag= at the manifest at once and names them in OCI-Tag', async () => {
    const image = await stack.http.pushImage('corners/tags', 'seed', 'several tags');
    const pushed = await stack.http.putManifest('corners/tags', `${image.digest}?tag=a&tag=b&tag=c`, image.bytes);
    expect(pushed.status).toBe(201);
    expect(pushed.headers.get('oci-tag')?.split(/,\s*/)).toEqual(['a', 'b', 'c']);
    const tags = (await (await stack.http.fetch('/v2/corners/tags/tags/list')).json()) as { tags: string[] };
    expect(tags.tags).toEqual(['a', 'b', 'c', 'seed']);
    for (const tag of ['a', 'b', 'c']) {
      expect((await stack.http.fetch(`/v2/corners/tags/manifests/${tag}`, { method: 'HEAD' })).headers.get('docker-content-digest')).toBe(
        image.digest,
      );
    }
  });

  it('refuses the whole push when one tag is immutable and names another digest, naming the rule', async () => {
    const first = await stack.http.pushImage('corners/immutable', 'v1', 'immutable first');
    const second = await stack.http.pushImage('corners/immutable', 'v2', 'immutable second');
    const refused = await stack.http.putManifest('corners/immutable', `${second.digest}?tag=fresh&tag=v1`, second.bytes);
    expect(refused.status).toBe(403);
    const body = (await refused.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('DENIED');
    expect(body.errors[0]!.message).toContain('rule corners/immutable');
    expect((await stack.http.fetch('/v2/corners/immutable/manifests/fresh', { method: 'HEAD' })).status).toBe(404);
    expect((await stack.http.fetch('/v2/corners/immutable/manifests/v1', { method: 'HEAD' })).headers.get('docker-content-digest')).toBe(
      first.digest,
    );
  });

  it(`refuses more than ${MAX_TAGS_PER_PUSH} tags with 414, and an invalid one with 400, storing nothing`, async () => {
    const image = await stack.http.pushImage('corners/many', 'seed', 'too many tags');
    const many = Array.from({ length: MAX_TAGS_PER_PUSH + 1 }, (_, i) => `tag=t${i}`).join('&');
    expect((await stack.http.putManifest('corners/many', `${image.digest}?${many}`, image.bytes)).status).toBe(414);
    const invalid = await stack.http.putManifest('corners/many', `${image.digest}?tag=ok&tag=.bad`, image.bytes);
    expect(invalid.status).toBe(400);
    expect((await stack.http.fetch('/v2/corners/many/manifests/ok', { method: 'HEAD' })).status).toBe(404);
  });
});

describe('headers and the ns parameter', () => {
  it('answers manifest GET and HEAD with Docker-Content-Digest and Content-Length; ns= of its own host changes nothing', async () => {
    const image = await stack.http.pushImage('corners/headers', 'v1', 'headers');
    const own = new URL(stack.registry.url).host;
    for (const method of ['GET', 'HEAD']) {
      const response = await stack.http.fetch(`/v2/corners/headers/manifests/v1?ns=${own}`, { method });
      expect(response.status).toBe(200);
      expect(response.headers.get('docker-content-digest')).toBe(image.digest);
      expect(response.headers.get('content-length')).toBe(String(Buffer.byteLength(image.bytes)));
    }
  });

  it('answers a read with ns= of a host no upstream serves 404 NAME_UNKNOWN saying so (containerd then tries its next host), never the team repository of that name; /v2/ and pushes ignore ns=', async () => {
    const image = await stack.http.pushImage('corners/mirrored', 'v1', 'mirrored');
    const manifest = await stack.http.fetch('/v2/corners/mirrored/manifests/v1?ns=docker.io');
    expect(manifest.status).toBe(404);
    const refusal = (await manifest.json()) as { errors: { code: string; message: string }[] };
    expect(refusal.errors[0]?.code).toBe('NAME_UNKNOWN');
    expect(refusal.errors[0]?.message).toContain('no upstream is configured for ns=docker.io');
    const blob = await stack.http.fetch(`/v2/corners/mirrored/blobs/${image.layer}?ns=ghcr.io`, { method: 'HEAD' });
    expect(blob.status).toBe(404);
    expect((await stack.http.fetch('/v2/corners/mirrored/tags/list?ns=quay.io')).status).toBe(404);
    expect((await stack.http.fetch('/v2/?ns=docker.io')).status).toBe(200);
    const upload = await stack.http.fetch('/v2/corners/mirrored/blobs/uploads/?ns=docker.io', { method: 'POST' });
    expect(upload.status).toBe(202);
  });
});
