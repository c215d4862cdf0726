/**
 * Hostile input against the local registry: malformed names, digests, ranges, framing,
 * manifests, uploads and listings, sent as raw bytes on a socket where fetch would tidy them.
 * None may answer 5xx, and a fixture image pushed first must pull back intact afterwards.
 */
import { connect } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { OCI_INDEX, OCI_MANIFEST, sha256 } from '../support/registry-http.js';
import { useLocalStack } from './local-stack.js';

const stack = useLocalStack('hostile');
let fixture: { digest: string; bytes: string; layer: string };

beforeAll(async () => {
  fixture = await stack.http.pushImage('fixture/app', 'v1', 'the fixture image');
});

/** Sends bytes exactly as given and answers the status of the first response line (0: none within 10 s). */
function raw(request: string | Buffer): Promise<number> {
  return new Promise((resolve) => {
    const socket = connect(Number(new URL(stack.registry.url).port), '127.0.0.1');
    let received = '';
    const timer = setTimeout(() => done(0), 10_000);
    const done = (status: number) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(status);
    };
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      const line = /^HTTP\/1\.1 (\d{3})/.exec(received);
      if (line) done(Number(line[1]));
    });
    socket.on('error', () => done(-1));
    socket.on('close', () => done(-1));
    socket.write(request);
  });
}

function get(path: string, headers: Record<string, string> = {}): string {
  const lines = Object.entries({ Host: '127.0.0.1', Connection: 'close', ...headers }).map(([name, value]) => `${name}: ${value}`);
  return `GET ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
}

function withBody(method: string, path: string, body: string | Buffer, headers: Record<string, string> = {}): Buffer {
  const bytes = Buffer.from(body);
  const lines = Object.entries({ Host: '127.0.0.1', Connection: 'close', 'Content-Length': String(bytes.length), ...headers }).map(
    ([name, value]) => `${name}: ${value}`,
  );
  return Buffer.concat([Buffer.from(`${method} ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`), bytes]);
}

const DIGEST = sha256('anything');
const LONG = 'a'.repeat(3000);

const names = [
  '/v2/UPPER/case/tags/list',
  '/v2/a..b/tags/list',
  `/v2/${'a'.repeat(300)}/tags/list`,
  `/v2/${LONG}/manifests/latest`,
  '/v2/a%00b/manifests/latest',
  '/v2//manifests/latest',
  '/v2/fixture/app/../../etc/passwd/tags/list',
  '/v2/fixture\\app/tags/list',
  '/v2/fixture/app/%2e%2e/x/tags/list',
  '/v2/_catalog/../fixture/app/tags/list',
  `/v2/${'a/'.repeat(200)}b/tags/list`,
];
const digests = [
  '/v2/fixture/app/blobs/sha256:zz',
  `/v2/fixture/app/blobs/sha256:${'0'.repeat(63)}`,
  `/v2/fixture/app/blobs/sha256:${'A'.repeat(64)}`,
  '/v2/fixture/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e',
  '/v2/fixture/app/blobs/sha512:short',
  `/v2/fixture/app/blobs/sha256:${LONG}`,
  `/v2/fixture/app/manifests/sha256:${LONG}`,
  '/v2/fixture/app/manifests/sha256:',
  `/v2/fixture/app/referrers/not-a-digest`,
  `/v2/fixture/app/referrers/${DIGEST}?last=${LONG}`,
  `/v2/fixture/app/referrers/${DIGEST}?artifactType=${LONG}`,
];
const listings = [
  '/v2/fixture/app/tags/list?n=-1',
  '/v2/fixture/app/tags/list?n=abc',
  '/v2/fixture/app/tags/list?n=99999999999999999999999',
  '/v2/fixture/app/tags/list?n=1e3',
  `/v2/fixture/app/tags/list?last=${LONG}`,
  '/v2/fixture/app/tags/list?last=%00%ff',
  `/v2/_catalog?last=${LONG}`,
  '/v2/_catalog?n=0&last=',
  '/v2/fixture/app/tags/list?n=1&n=2&last=a&last=b',
];

describe('reads with hostile paths and queries', () => {
  it.each([...names, ...digests, ...listings])('GET %s answers below 500', async (path) => {
    const status = await raw(get(path));
    expect(status).toBeGreaterThanOrEqual(200);
    expect(status).toBeLessThan(500);
  });

  it.each([['bytes=abc'], ['bytes=5-2'], ['bytes=0-99999999999999999999999'], ['bytes=-0'], [`bytes=${'0-1,'.repeat(2000)}0-1`]])(
    'GET of a blob with Range %s answers below 500',
    async (range) => {
      const status = await raw(get(`/v2/fixture/app/blobs/${fixture.layer}`, { Range: range.slice(0, 4000) }));
      expect(status).toBeGreaterThanOrEqual(200);
      expect(status).toBeLessThan(500);
    },
  );
});

describe('writes with hostile framing and bodies', () => {
  const manifestBodies: [string, string | Buffer, string][] = [
    ['not JSON', '{"schemaVersion":', OCI_MANIFEST],
    ['a JSON array', '[1,2,3]', OCI_MANIFEST],
    ['deeply nested', `${'['.repeat(50_000)}${']'.repeat(50_000)}`, OCI_MANIFEST],
    ['schemaVersion 1', '{"schemaVersion":1}', OCI_MANIFEST],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), OCI_MANIFEST],
    ['a huge size', JSON.stringify({ schemaVersion: 2, config: { mediaType: 'x', digest: DIGEST, size: 1e300 }, layers: [] }), OCI_MANIFEST],
    ['a null digest', JSON.stringify({ schemaVersion: 2, config: { mediaType: 'x', digest: null, size: 1 }, layers: [] }), OCI_MANIFEST],
    ['layers as an object', JSON.stringify({ schemaVersion: 2, config: { mediaType: 'x', digest: DIGEST, size: 1 }, layers: {} }), OCI_MANIFEST],
    [
      'urls of numbers',
      JSON.stringify({ schemaVersion: 2, config: { mediaType: 'x', digest: DIGEST, size: 1, urls: [1] }, layers: [] }),
      OCI_MANIFEST,
    ],
    [
      'a subject that is a string',
      JSON.stringify({ schemaVersion: 2, config: { mediaType: 'x', digest: DIGEST, size: 1 }, layers: [], subject: 'x' }),
      OCI_MANIFEST,
    ],
    [
      'an index of itself',
      JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_INDEX, digest: DIGEST, size: 1 }] }),
      OCI_INDEX,
    ],
    ['a mismatched media type', JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }), OCI_MANIFEST],
    ['an unknown media type', JSON.stringify({ schemaVersion: 2, mediaType: 'text/plain' }), 'text/plain'],
    ['over 4 MiB', Buffer.alloc(4 * 1024 * 1024 + 10, 0x20), OCI_MANIFEST],
  ];

  it.each(manifestBodies)('a manifest PUT with %s answers 4xx', async (_, body, mediaType) => {
    const status = await raw(withBody('PUT', '/v2/fixture/app/manifests/v1', body, { 'Content-Type': mediaType }));
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(500);
  });

  it.each([
    ['a Content-Length that is not a number', 'PUT /v2/fixture/app/manifests/v2 HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}'],
    ['two Content-Lengths', 'PUT /v2/fixture/app/manifests/v2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}'],
    ['a malformed chunk', 'PUT /v2/fixture/app/manifests/v2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n'],
    [
      'both framings',
      'PUT /v2/fixture/app/manifests/v2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
    ],
    ['a header without a colon', 'GET /v2/ HTTP/1.1\r\nHost: x\r\nnonsense\r\n\r\n'],
    ['an absurd method', 'BREW /v2/ HTTP/1.1\r\nHost: x\r\n\r\n'],
  ])('a request with %s answers below 500', async (_, request) => {
    const status = await raw(request);
    // Node's parser may answer 400 or close the connection (-1): either way, no 5xx.
    expect(status === -1 || (status >= 400 && status < 500)).toBe(true);
  });

  it('uploads with hostile parameters and ranges answer below 500', async () => {
    const location = await stack.http.openUpload('fixture/app');
    const path = new URL(location, stack.registry.url).pathname;
    const statuses = [
      await raw(withBody('POST', '/v2/fixture/app/blobs/uploads/?digest=sha256:zz', 'x')),
      await raw(withBody('POST', `/v2/fixture/app/blobs/uploads/?mount=${LONG}&from=${LONG}`, '')),
      await raw(withBody('POST', '/v2/fixture/app/blobs/uploads/?mount=sha256:zz&from=UPPER', '')),
      await raw(withBody('POST', '/v2/fixture/app/blobs/uploads/?digest-algorithm=md5', '')),
      await raw(withBody('PATCH', path, 'abc', { 'Content-Range': 'abc' })),
      await raw(withBody('PATCH', path, 'abc', { 'Content-Range': '5-2' })),
      await raw(withBody('PATCH', path, 'abc', { 'Content-Range': '0-99999999999999999999' })),
      await raw(withBody('PATCH', path, 'abc', { 'Content-Range': '-1--3' })),
      await raw(withBody('PUT', `${path}?digest=sha256:zz`, '')),
      await raw(withBody('PUT', `${path}?digest=${DIGEST}`, 'wrong bytes')),
      await raw(withBody('PATCH', '/v2/fixture/app/blobs/uploads/not-a-session', 'x')),
      await raw(withBody('PATCH', `/v2/fixture/app/blobs/uploads/${LONG}`, 'x')),
      await raw(withBody('DELETE', '/v2/fixture/app/blobs/uploads/00000000-0000-0000-0000-000000000000', '')),
      await raw(withBody('DELETE', `/v2/fixture/app/blobs/${fixture.layer}`, '')),
      await raw(withBody('DELETE', `/v2/fixture/app/manifests/${LONG}`, '')),
    ];
    // A mount that cannot be done falls back to a new session (202), as the spec says.
    for (const status of statuses) {
      expect(status).toBeGreaterThanOrEqual(200);
      expect(status).toBeLessThan(500);
    }
  });
});

describe('after all of it', () => {
  it('the fixture image is intact: same manifest, same tag, every blob pulls byte for byte', async () => {
    const manifest = await stack.http.fetch('/v2/fixture/app/manifests/v1');
    expect(manifest.status).toBe(200);
    expect(await manifest.text()).toBe(fixture.bytes);
    const document = JSON.parse(fixture.bytes) as { config: { digest: string }; layers: { digest: string }[] };
    for (const digest of [document.config.digest, ...document.layers.map((layer) => layer.digest)]) {
      const redirect = await stack.http.fetch(`/v2/fixture/app/blobs/${digest}`);
      expect(redirect.status).toBe(307);
      const bytes = Buffer.from(await (await fetch(redirect.headers.get('location')!)).arrayBuffer());
      expect(sha256(bytes)).toBe(digest);
    }
    expect(((await (await stack.http.fetch('/v2/fixture/app/tags/list')).json()) as { tags: string[] }).tags).toEqual(['v1']);
  });
});
