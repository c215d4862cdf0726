import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RegistryError } from '../../../../registry/model/oci/errors.js';
import { MAX_MANIFEST_BYTES, parseManifest } from '../../../../registry/model/oci/manifest.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const EMPTY_CONFIG = 'application/vnd.oci.empty.v1+json';
const EMPTY_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

const digestOf = (label: string) => `sha256:${createHash('sha256').update(label).digest('hex')}`;
const CONFIG = digestOf('config');
const LAYER1 = digestOf('layer1');
const LAYER2 = digestOf('layer2');
const CHILD1 = digestOf('child1');
const CHILD2 = digestOf('child2');
const SUBJECT = digestOf('subject');

const encode = (document: unknown) => new TextEncoder().encode(JSON.stringify(document));
const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

function ociImage(extra: Record<string, unknown> = {}) {
  return {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: CONFIG, size: 123 },
    layers: [
      { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: LAYER1, size: 1000 },
      { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: LAYER2, size: 2000 },
    ],
    ...extra,
  };
}

function expectInvalid(bytes: Uint8Array, contentType?: string): RegistryError {
  let caught: unknown;
  try {
    parseManifest(bytes, contentType);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(RegistryError);
  const error = caught as RegistryError;
  expect(error.code).toBe('MANIFEST_INVALID');
  expect(error.status).toBe(400);
  expect(JSON.parse(error.toBody()).errors[0].code).toBe('MANIFEST_INVALID');
  return error;
}

describe('parseManifest: accepted documents', () => {
  it('an OCI image manifest: config and layers are the blobs, artifactType defaults to the config type', () => {
    const bytes = encode(ociImage({ annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' } }));
    const parsed = parseManifest(bytes, OCI_MANIFEST);
    expect(parsed).toMatchObject({
      mediaType: OCI_MANIFEST,
      digest: sha256(bytes),
      size: bytes.byteLength,
      blobDigests: [CONFIG, LAYER1, LAYER2],
      childDigests: [],
      artifactType: 'application/vnd.oci.image.config.v1+json',
      annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
    });
    expect(parsed.subject).toBeUndefined();
  });

  it('an OCI image manifest without mediaType is recognised by its shape or the Content-Type', () => {
    const { mediaType: _omit, ...document } = ociImage();
    const bytes = encode(document);
    expect(parseManifest(bytes, undefined).mediaType).toBe(OCI_MANIFEST);
    expect(parseManifest(bytes, `${OCI_MANIFEST}; charset=utf-8`).mediaType).toBe(OCI_MANIFEST);
  });

  it('an OCI image index: children are manifests, not blobs', () => {
    const bytes = encode({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: CHILD1, size: 500, platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: OCI_MANIFEST, digest: CHILD2, size: 501, platform: { architecture: 'arm64', os: 'linux' } },
      ],
    });
    const parsed = parseManifest(bytes, OCI_INDEX);
    expect(parsed).toMatchObject({ mediaType: OCI_INDEX, digest: sha256(bytes), blobDigests: [], childDigests: [CHILD1, CHILD2] });
  });

  it('an OCI index without mediaType or Content-Type is recognised by its manifests array', () => {
    const bytes = encode({ schemaVersion: 2, manifests: [{ mediaType: OCI_MANIFEST, digest: CHILD1, size: 1 }] });
    expect(parseManifest(bytes, undefined)).toMatchObject({ mediaType: OCI_INDEX, childDigests: [CHILD1] });
  });

  it('a Docker schema 2 manifest', () => {
    const bytes = encode({
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: CONFIG, size: 1469 },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: LAYER1, size: 2811 }],
    });
    const parsed = parseManifest(bytes, DOCKER_MANIFEST);
    expect(parsed).toMatchObject({
      mediaType: DOCKER_MANIFEST,
      digest: sha256(bytes),
      size: bytes.byteLength,
      blobDigests: [CONFIG, LAYER1],
      childDigests: [],
    });
  });

  it('a Docker manifest list', () => {
    const bytes = encode({
      schemaVersion: 2,
      mediaType: DOCKER_LIST,
      manifests: [
        { mediaType: DOCKER_MANIFEST, digest: CHILD1, size: 528, platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: DOCKER_MANIFEST, digest: CHILD2, size: 528, platform: { architecture: 'arm', os: 'linux', variant: 'v7' } },
      ],
    });
    expect(parseManifest(bytes, DOCKER_LIST)).toMatchObject({ mediaType: DOCKER_LIST, blobDigests: [], childDigests: [CHILD1, CHILD2] });
  });

  it('an OCI 1.1 artifact with an explicit artifactType, the empty config and a subject', () => {
    const bytes = encode({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.sbom.v1+json',
      config: { mediaType: EMPTY_CONFIG, digest: EMPTY_DIGEST, size: 2, data: 'e30=' },
      layers: [{ mediaType: 'application/spdx+json', digest: LAYER1, size: 4096 }],
      subject: { mediaType: OCI_MANIFEST, digest: SUBJECT, size: 1234 },
      annotations: { 'org.opencontainers.image.created': '2024-05-01T00:00:00Z' },
    });
    const parsed = parseManifest(bytes, OCI_MANIFEST);
    expect(parsed).toMatchObject({
      artifactType: 'application/vnd.example.sbom.v1+json',
      subject: SUBJECT,
      blobDigests: [EMPTY_DIGEST, LAYER1],
      annotations: { 'org.opencontainers.image.created': '2024-05-01T00:00:00Z' },
    });
  });

  it('an OCI artifact with no layers is accepted', () => {
    const bytes = encode({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.signature',
      config: { mediaType: EMPTY_CONFIG, digest: EMPTY_DIGEST, size: 2 },
      layers: [],
    });
    expect(parseManifest(bytes, OCI_MANIFEST)).toMatchObject({ blobDigests: [EMPTY_DIGEST], artifactType: 'application/vnd.example.signature' });
  });

  it('a Helm chart manifest is typed by its config', () => {
    const bytes = encode({
      schemaVersion: 2,
      config: { mediaType: 'application/vnd.cncf.helm.config.v1+json', digest: CONFIG, size: 117 },
      layers: [{ mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip', digest: LAYER1, size: 3504 }],
      annotations: { 'org.opencontainers.image.title': 'mychart', 'org.opencontainers.image.version': '0.1.0' },
    });
    const parsed = parseManifest(bytes, OCI_MANIFEST);
    expect(parsed).toMatchObject({
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.cncf.helm.config.v1+json',
      blobDigests: [CONFIG, LAYER1],
    });
  });

  it('an index may have a subject too, and keeps its own artifactType', () => {
    const bytes = encode({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      artifactType: 'application/vnd.example.bundle',
      manifests: [{ mediaType: OCI_MANIFEST, digest: CHILD1, size: 1 }],
      subject: { mediaType: OCI_MANIFEST, digest: SUBJECT, size: 10 },
    });
    expect(parseManifest(bytes, OCI_INDEX)).toMatchObject({ subject: SUBJECT, artifactType: 'application/vnd.example.bundle' });
  });

  it('foreign layers with urls are not required blobs; foreign layers without urls are', () => {
    const foreign = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';
    const bytes = encode({
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: CONFIG, size: 1 },
      layers: [
        { mediaType: foreign, digest: LAYER1, size: 10, urls: ['https://mcr.microsoft.com/layer'] },
        { mediaType: foreign, digest: LAYER2, size: 10 },
      ],
    });
    expect(parseManifest(bytes, DOCKER_MANIFEST).blobDigests).toEqual([CONFIG, LAYER2]);
  });

  it('accepts sha512 descriptor digests', () => {
    const sha512 = `sha512:${createHash('sha512').update('x').digest('hex')}`;
    const document = ociImage();
    document.layers = [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha512, size: 1 }];
    expect(parseManifest(encode(document), OCI_MANIFEST).blobDigests).toEqual([CONFIG, sha512]);
  });
});

describe('parseManifest: digest over the exact bytes', () => {
  it('whitespace variants of the same document get different digests and sizes, each over its own bytes', () => {
    const document = ociImage();
    const compact = new TextEncoder().encode(JSON.stringify(document));
    const pretty = new TextEncoder().encode(JSON.stringify(document, null, 2));
    const trailingNewline = new TextEncoder().encode(`${JSON.stringify(document)}\n`);
    const results = [compact, pretty, trailingNewline].map((bytes) => parseManifest(bytes, OCI_MANIFEST));
    expect(results.map((r) => r.digest)).toEqual([sha256(compact), sha256(pretty), sha256(trailingNewline)]);
    expect(new Set(results.map((r) => r.digest)).size).toBe(3);
    expect(results.map((r) => r.size)).toEqual([compact.byteLength, pretty.byteLength, trailingNewline.byteLength]);
  });

  it('key order is not normalised either', () => {
    const a = new TextEncoder().encode(`{"schemaVersion":2,"mediaType":"${OCI_INDEX}","manifests":[]}`);
    const b = new TextEncoder().encode(`{"mediaType":"${OCI_INDEX}","schemaVersion":2,"manifests":[]}`);
    expect(parseManifest(a, undefined).digest).toBe(sha256(a));
    expect(parseManifest(b, undefined).digest).toBe(sha256(b));
    expect(sha256(a)).not.toBe(sha256(b));
  });

  it('non-ASCII annotation values are hashed as their UTF-8 bytes', () => {
    const bytes = encode(ociImage({ annotations: { description: 'café ☕ 日本' } }));
    const parsed = parseManifest(bytes, OCI_MANIFEST);
    expect(parsed.digest).toBe(sha256(bytes));
    expect(parsed.size).toBe(bytes.byteLength);
    expect(parsed.annotations).toEqual({ description: 'café ☕ 日本' });
  });

  it('exposes the 4 MiB limit', () => {
    expect(MAX_MANIFEST_BYTES).toBe(4 * 1024 * 1024);
  });
});

describe('parseManifest: MANIFEST_INVALID', () => {
  it.each([
    ['invalid JSON', '{"schemaVersion":2,'],
    ['empty body', ''],
    ['a JSON array', '[]'],
    ['a JSON string', '"manifest"'],
    ['a JSON number', '2'],
    ['null', 'null'],
  ])('%s', (_label, text) => {
    expectInvalid(new TextEncoder().encode(text), OCI_MANIFEST);
  });

  it('bytes that are not UTF-8', () => {
    const bytes = new Uint8Array([...new TextEncoder().encode('{"schemaVersion":2,"x":"'), 0xff, 0xfe, ...new TextEncoder().encode('"}')]);
    expectInvalid(bytes, OCI_MANIFEST);
  });

  it('schemaVersion 1 (Docker schema 1)', () => {
    const bytes = encode({ schemaVersion: 1, name: 'library/alpine', tag: 'latest', architecture: 'amd64', fsLayers: [], history: [] });
    expectInvalid(bytes, 'application/vnd.docker.distribution.manifest.v1+prettyjws');
    expectInvalid(bytes, undefined);
    expectInvalid(encode(ociImage({ schemaVersion: 1 })), OCI_MANIFEST);
  });

  it('schemaVersion missing or a string', () => {
    const { schemaVersion: _omit, ...document } = ociImage();
    expectInvalid(encode(document), OCI_MANIFEST);
    expectInvalid(encode(ociImage({ schemaVersion: '2' })), OCI_MANIFEST);
  });

  it('a layer descriptor with a bad digest', () => {
    const document = ociImage();
    document.layers[1] = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: 'sha256:1234', size: 1 };
    expectInvalid(encode(document), OCI_MANIFEST);
  });

  it('a config descriptor with an uppercase digest', () => {
    const document = ociImage({ config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: CONFIG.toUpperCase(), size: 1 } });
    expectInvalid(encode(document), OCI_MANIFEST);
  });

  it('an index child with an md5 digest', () => {
    const bytes = encode({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: 'md5:d41d8cd98f00b204e9800998ecf8427e', size: 1 }],
    });
    expectInvalid(bytes, OCI_INDEX);
  });

  it('a subject with a bad digest', () => {
    expectInvalid(encode(ociImage({ subject: { mediaType: OCI_MANIFEST, digest: 'sha256:nothex', size: 1 } })), OCI_MANIFEST);
  });

  it.each([
    ['negative size', { mediaType: 'x/y', digest: LAYER1, size: -1 }],
    ['fractional size', { mediaType: 'x/y', digest: LAYER1, size: 1.5 }],
    ['string size', { mediaType: 'x/y', digest: LAYER1, size: '1' }],
    ['missing mediaType', { digest: LAYER1, size: 1 }],
    ['not an object', 'sha256:abc'],
  ])('a layer descriptor with %s', (_label, layer) => {
    expectInvalid(encode(ociImage({ layers: [layer] })), OCI_MANIFEST);
  });

  it('an image manifest without layers or config', () => {
    const { layers: _l, ...noLayers } = ociImage();
    expectInvalid(encode(noLayers), OCI_MANIFEST);
    const { config: _c, ...noConfig } = ociImage();
    expectInvalid(encode(noConfig), OCI_MANIFEST);
  });

  it('an index whose manifests is not an array', () => {
    expectInvalid(encode({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: {} }), OCI_INDEX);
  });

  it('Content-Type disagreeing with the mediaType in the document', () => {
    const error = expectInvalid(encode(ociImage()), DOCKER_MANIFEST);
    expect(error.message).toContain(OCI_MANIFEST);
    expectInvalid(encode({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }), OCI_MANIFEST);
  });

  it('an unsupported media type', () => {
    expectInvalid(encode(ociImage({ mediaType: 'application/vnd.example.unknown+json' })), 'application/vnd.example.unknown+json');
  });

  it('a document whose type cannot be told', () => {
    expectInvalid(encode({ schemaVersion: 2, layers: [] }), undefined);
  });

  it('annotations that are not strings', () => {
    expectInvalid(encode(ociImage({ annotations: { count: 3 } })), OCI_MANIFEST);
    expectInvalid(encode(ociImage({ annotations: 'x' })), OCI_MANIFEST);
  });

  it('an artifactType that is not a string', () => {
    expectInvalid(encode(ociImage({ artifactType: 42 })), OCI_MANIFEST);
  });
});
