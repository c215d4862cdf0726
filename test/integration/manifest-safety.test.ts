/**
 * What a push or a delete can no longer break, against the local stack over raw HTTP: an
 * immutable multi-arch image keeps its platform manifests and layers, a referenced blob
 * stays linked, big or odd manifests answer 4xx and never 500, and every listing pages.
 */
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../registry/storage/keys.js';
import { PolicyStore } from '../../registry/storage/policy-store.js';
import { OCI_INDEX, OCI_MANIFEST, imageManifest, sha256 } from '../support/registry-http.js';
import { useLocalStack } from './local-stack.js';

const stack = useLocalStack('manifest-safety');

beforeAll(async () => {
  await new PolicyStore(stack.clients.dynamo, stack.registry.config.tableName).putImmutableRule({ pattern: 'imm/*', excludes: [] });
});

interface OciError {
  code: string;
  message: string;
  detail?: Record<string, unknown>;
}

async function ociError(response: Response): Promise<OciError> {
  return ((await response.json()) as { errors: OciError[] }).errors[0]!;
}

/** A platform image pushed by digest, then an index of it tagged `tag`, as buildx pushes multi-arch. */
async function pushMultiArch(repo: string, tag: string, seed: string) {
  const config = await stack.http.pushBlob(repo, `{"architecture":"amd64","os":"linux","seed":"${seed}"}`);
  const layer = await stack.http.pushBlob(repo, `layer bytes of ${seed}`);
  const bytes = imageManifest(config, layer);
  const child = { digest: sha256(bytes), bytes, layer };
  expect((await stack.http.putManifest(repo, child.digest, bytes)).status).toBe(201);
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [
      { mediaType: OCI_MANIFEST, digest: child.digest, size: Buffer.byteLength(child.bytes), platform: { architecture: 'amd64', os: 'linux' } },
    ],
  });
  expect((await stack.http.putManifest(repo, tag, index, OCI_INDEX)).status).toBe(201);
  return { child, index: sha256(index) };
}

async function pullBlob(repo: string, digest: string): Promise<number> {
  const redirect = await stack.http.fetch(`/v2/${repo}/blobs/${digest}`);
  if (redirect.status !== 307) return redirect.status;
  return (await fetch(redirect.headers.get('location')!)).status;
}

describe('an immutable multi-arch image stays whole', () => {
  it("refuses to delete the index's untagged platform manifest with 403 DENIED naming the rule", async () => {
    const { child, index } = await pushMultiArch('imm/app', 'multi', 'immutable platform');
    const refused = await stack.http.fetch(`/v2/imm/app/manifests/${child.digest}`, { method: 'DELETE' });
    expect(refused.status).toBe(403);
    const error = await ociError(refused);
    expect(error.code).toBe('DENIED');
    expect(error.message).toContain('rule imm/*');
    expect(error.message).toContain('tag multi');
    expect(error.detail).toMatchObject({ index, manifest: child.digest });
    expect((await stack.http.fetch(`/v2/imm/app/manifests/${child.digest}`)).status).toBe(200);
    expect(await pullBlob('imm/app', child.layer)).toBe(200);
  });

  it('refuses through nested indexes too, and allows the delete once nothing immutable reaches it', async () => {
    const { child, index } = await pushMultiArch('imm/nested', 'inner', 'nested platform');
    const outer = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_INDEX, digest: index, size: 300 }] });
    expect((await stack.http.putManifest('imm/nested', 'outer', outer, OCI_INDEX)).status).toBe(201);
    expect((await stack.http.fetch(`/v2/imm/nested/manifests/${child.digest}`, { method: 'DELETE' })).status).toBe(403);

    // In a repository no rule covers, the same shape may be taken apart.
    const mutable = await pushMultiArch('mutable/app', 'multi', 'mutable platform');
    expect((await stack.http.fetch(`/v2/mutable/app/manifests/${mutable.child.digest}`, { method: 'DELETE' })).status).toBe(202);
  });
});

describe('blob deletes never break a manifest', () => {
  it("refuses to unlink an immutable image's layer, or any layer a manifest of the repository uses", async () => {
    const image = await stack.http.pushImage('imm/layers', 'v1', 'immutable layers');
    const refused = await stack.http.fetch(`/v2/imm/layers/blobs/${image.layer}`, { method: 'DELETE' });
    expect(refused.status).toBe(403);
    const error = await ociError(refused);
    expect(error).toMatchObject({ code: 'DENIED', detail: { digest: image.layer, manifest: image.digest } });
    expect(error.message).toContain('delete that manifest first');
    expect(await pullBlob('imm/layers', image.layer)).toBe(200);

    const mutable = await stack.http.pushImage('mutable/layers', 'v1', 'mutable layers');
    expect((await stack.http.fetch(`/v2/mutable/layers/blobs/${mutable.layer}`, { method: 'DELETE' })).status).toBe(403);
    expect(await pullBlob('mutable/layers', mutable.layer)).toBe(200);
    // Once the manifest is gone, so may the blob be.
    expect((await stack.http.fetch(`/v2/mutable/layers/manifests/${mutable.digest}`, { method: 'DELETE' })).status).toBe(202);
    expect((await stack.http.fetch(`/v2/mutable/layers/blobs/${mutable.layer}`, { method: 'DELETE' })).status).toBe(202);
    expect((await stack.http.fetch(`/v2/mutable/layers/blobs/${mutable.layer}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('a push racing blob deletes either fails with MANIFEST_BLOB_UNKNOWN or leaves a pullable image', async () => {
    const repo = 'race/unlink';
    for (let round = 0; round < 12; round++) {
      const config = await stack.http.pushBlob(repo, `{"round":${round}}`);
      const layer = await stack.http.pushBlob(repo, `racing layer ${round}`);
      const manifest = imageManifest(config, layer);
      const [push, unlink] = await Promise.all([
        stack.http.putManifest(repo, `r${round}`, manifest),
        stack.http.fetch(`/v2/${repo}/blobs/${layer}`, { method: 'DELETE' }),
      ]);
      if (push.status === 201) {
        expect(await pullBlob(repo, layer)).toBe(200);
        expect(unlink.status).toBe(403);
      } else {
        expect(push.status).toBe(400);
        expect((await ociError(push)).code).toBe('MANIFEST_BLOB_UNKNOWN');
        expect(unlink.status).toBe(202);
      }
    }
  });
});

describe('large and odd manifests answer 4xx, never 500', () => {
  it('stores a manifest listing one layer 6,000 times once, and pulls it back', async () => {
    const config = await stack.http.pushBlob('big/repeat', '{"os":"linux"}');
    const layer = await stack.http.pushBlob('big/repeat', 'the one layer');
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 14 },
      layers: Array.from({ length: 6000 }, () => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer, size: 13 })),
    });
    expect((await stack.http.putManifest('big/repeat', 'v1', manifest)).status).toBe(201);
    expect(await (await stack.http.fetch('/v2/big/repeat/manifests/v1')).text()).toBe(manifest);
  });

  it('refuses more distinct references than the documented limit with 400 MANIFEST_INVALID before looking any up', async () => {
    const digests = Array.from({ length: 20_000 }, (_, i) => sha256(`unknown ${i}`));
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: digests.map((digest) => ({ mediaType: OCI_MANIFEST, digest, size: 100, annotations: { n: 'x'.repeat(20) } })),
    });
    expect(Buffer.byteLength(index)).toBeGreaterThan(3_000_000);
    const refused = await stack.http.putManifest('big/index', 'v1', index, OCI_INDEX);
    expect(refused.status).toBe(400);
    const error = await ociError(refused);
    expect(error.code).toBe('MANIFEST_INVALID');
    expect(error.message).toContain('at most 1000');
  });

  it('round-trips a subject manifest whose annotation keys are "", constructor and __proto__', async () => {
    const subject = await stack.http.pushImage('odd/annotations', 'v1', 'subject of odd annotations');
    const annotations = JSON.parse('{"":"empty","constructor":"c","__proto__":"p","toString":"t"}') as Record<string, string>;
    const config = await stack.http.pushBlob('odd/annotations', '{}');
    const signature = imageManifest(config, config, {
      artifactType: 'application/vnd.example.signature',
      subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: Buffer.byteLength(subject.bytes) },
      annotations,
    });
    const pushed = await stack.http.putManifest('odd/annotations', sha256(signature), signature);
    expect(pushed.status).toBe(201);
    const referrers = (await (await stack.http.fetch(`/v2/odd/annotations/referrers/${subject.digest}`)).json()) as {
      manifests: { annotations: unknown }[];
    };
    expect(JSON.stringify(referrers.manifests[0]!.annotations)).toBe(JSON.stringify(annotations));
  });

  it.each([
    ['an array', ['not', 'a', 'map']],
    ['a string', 'not a map'],
    ['a map with a number', { count: 3 }],
  ])('refuses annotations given as %s with 400 MANIFEST_INVALID', async (_, annotations) => {
    const config = await stack.http.pushBlob('odd/annotations', '{"bad":1}');
    const refused = await stack.http.putManifest('odd/annotations', 'bad', imageManifest(config, config, { annotations }));
    expect(refused.status).toBe(400);
    expect((await ociError(refused)).code).toBe('MANIFEST_INVALID');
  });
});

describe('every listing pages', () => {
  it('pages referrers with a Link header, each page well under the Lambda response limit', async () => {
    const repo = 'pages/referrers';
    const subject = await stack.http.pushImage(repo, 'v1', 'subject with many referrers');
    const config = await stack.http.pushBlob(repo, '{}');
    const pushed = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const referrer = imageManifest(config, config, {
        artifactType: 'application/vnd.example.sbom',
        subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: Buffer.byteLength(subject.bytes) },
        annotations: { index: String(i), padding: 'p'.repeat(60 * 1024) },
      });
      expect((await stack.http.putManifest(repo, sha256(referrer), referrer)).status).toBe(201);
      pushed.add(sha256(referrer));
    }
    // One referrer whose annotations exceed what a listing carries: listed without them.
    const huge = imageManifest(config, config, {
      subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: Buffer.byteLength(subject.bytes) },
      annotations: { padding: 'h'.repeat(2_500_000) },
    });
    expect((await stack.http.putManifest(repo, sha256(huge), huge)).status).toBe(201);

    const listed: { digest: string; annotations?: Record<string, string> }[] = [];
    let next: string | undefined = `/v2/${repo}/referrers/${subject.digest}`;
    let pages = 0;
    while (next) {
      const page = await stack.http.fetch(next);
      expect(page.status).toBe(200);
      const body = await page.text();
      expect(Buffer.byteLength(body)).toBeLessThan(2 * 1024 * 1024);
      listed.push(...(JSON.parse(body) as { manifests: typeof listed }).manifests);
      next = /<([^>]+)>;\s*rel="next"/.exec(page.headers.get('link') ?? '')?.[1];
      pages++;
    }
    expect(pages).toBeGreaterThan(1);
    expect(new Set(listed.map((entry) => entry.digest))).toEqual(new Set([...pushed, sha256(huge)]));
    expect(listed.find((entry) => entry.digest === sha256(huge))!.annotations).toBeUndefined();
    expect(listed.find((entry) => pushed.has(entry.digest))!.annotations!.padding).toHaveLength(60 * 1024);

    // The filter holds on every page, and is said to be applied.
    const filtered = await stack.http.fetch(`/v2/${repo}/referrers/${subject.digest}?artifactType=application/vnd.example.sbom`);
    expect(filtered.headers.get('oci-filters-applied')).toBe('artifactType');
    expect(filtered.headers.get('link')).toContain('artifactType=application%2Fvnd.example.sbom');
  });

  it('pages tags/list without n by a server-side page size, and the Link leads to the rest', async () => {
    const repo = 'pages/tags';
    const image = await stack.http.pushImage(repo, 'seed', 'many tags');
    for (let i = 0; i < 1200; i += 25) {
      await Promise.all(
        Array.from({ length: 25 }, (_, j) =>
          stack.clients.dynamo.send(
            new PutCommand({
              TableName: stack.registry.config.tableName,
              Item: {
                ...keys.tag(repo, `t${String(i + j).padStart(4, '0')}`),
                tag: `t${String(i + j).padStart(4, '0')}`,
                digest: image.digest,
                mediaType: OCI_MANIFEST,
                updatedAt: Date.now(),
              },
            }),
          ),
        ),
      );
    }
    const first = await stack.http.fetch(`/v2/${repo}/tags/list`);
    const page = (await first.json()) as { tags: string[] };
    expect(page.tags).toHaveLength(1000);
    const link = /<([^>]+)>;\s*rel="next"/.exec(first.headers.get('link') ?? '')?.[1];
    expect(link).toBeDefined();
    const rest = (await (await stack.http.fetch(link!)).json()) as { tags: string[] };
    expect(page.tags.length + rest.tags.length).toBe(1201);
  });

  it.each(['tags/list', '_catalog'])('refuses a last= that no listing holds (over 1 KB) with 400, not 500: %s', async (listing) => {
    const path = listing === '_catalog' ? '/v2/_catalog' : '/v2/pages/tags/tags/list';
    const refused = await stack.http.fetch(`${path}?n=10&last=${'a'.repeat(1500)}`);
    expect(refused.status).toBe(400);
    expect((await ociError(refused)).code).toBe('UNSUPPORTED');
  });
});
