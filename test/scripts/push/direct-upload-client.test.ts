/**
 * The client side of direct uploads, `npm run push` (scripts/push/): reading sources without
 * loading layers, references and challenges, retries and the concurrency limit.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile, link } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backoffDelay, NetworkError, RetryableError, withRetries } from '../../../scripts/push/http.js';
import { Progress } from '../../../scripts/push/progress.js';
import { Limiter, parseReference } from '../../../scripts/push/push.js';
import { parseChallenge } from '../../../scripts/push/registry-client.js';
import { loadSource, MEDIA_TYPES } from '../../../scripts/push/sources.js';
import { TarIndex } from '../../../scripts/push/tar-index.js';
import { writeImage, writeMultiArchIndex } from '../../support/oci-image.js';

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

let workDir: string;
beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'push-client-'));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('references and challenges', () => {
  it('reads <registry>/<name>[:tag]', () => {
    expect(parseReference('127.0.0.1:5000/team/app:v1')).toEqual({ registry: '127.0.0.1:5000', name: 'team/app', tag: 'v1' });
    expect(parseReference('docker://registry.example.com/app')).toEqual({ registry: 'registry.example.com', name: 'app', tag: 'latest' });
    expect(() => parseReference('app:v1')).toThrow(/registry/);
    expect(() => parseReference('host/App:v1')).toThrow(/name/);
    expect(() => parseReference('host/app@sha256:abc')).toThrow(/digest/);
  });

  it('parses Bearer and Basic challenges', () => {
    expect(
      parseChallenge('Bearer realm="http://127.0.0.1:5000/token",service="127.0.0.1:5000",scope="repository:a/b:pull,push",error="invalid_token"'),
    ).toEqual({
      scheme: 'bearer',
      params: { realm: 'http://127.0.0.1:5000/token', service: '127.0.0.1:5000', scope: 'repository:a/b:pull,push', error: 'invalid_token' },
    });
    expect(parseChallenge('Basic realm="Registry Realm"')).toEqual({ scheme: 'basic', params: { realm: 'Registry Realm' } });
  });
});

describe('retries', () => {
  it('backs off exponentially with jitter, capped', () => {
    expect(backoffDelay(1, 500, 15_000, () => 1)).toBe(500);
    expect(backoffDelay(3, 500, 15_000, () => 1)).toBe(2000);
    expect(backoffDelay(3, 500, 15_000, () => 0)).toBe(1000);
    expect(backoffDelay(10, 500, 15_000, () => 1)).toBe(15_000);
  });

  it('retries network errors and retryable answers, not others, and gives up after the attempts', async () => {
    const options = { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 };
    let calls = 0;
    expect(
      await withRetries(async () => {
        calls++;
        if (calls === 1) throw new NetworkError('reset');
        if (calls === 2) throw new RetryableError('503');
        return 'ok';
      }, options),
    ).toBe('ok');
    expect(calls).toBe(3);
    calls = 0;
    await expect(
      withRetries(async () => {
        calls++;
        throw new Error('400');
      }, options),
    ).rejects.toThrow('400');
    expect(calls).toBe(1);
    calls = 0;
    await expect(
      withRetries(async () => {
        calls++;
        throw new RetryableError('still 503');
      }, options),
    ).rejects.toThrow('still 503');
    expect(calls).toBe(3);
  });

  it('the limiter never runs more than its limit, and runs everything', async () => {
    const limiter = new Limiter(3);
    let running = 0;
    let most = 0;
    const done: number[] = [];
    await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        limiter.run(async () => {
          running++;
          most = Math.max(most, running);
          await new Promise((resolve) => setTimeout(resolve, (index % 4) + 1));
          running--;
          done.push(index);
        }),
      ),
    );
    expect(most).toBe(3);
    expect(done.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, index) => index));
  });
});

describe('tar index', () => {
  it('finds entries by path in GNU and pax archives, with long names and links, and their bytes at their offsets', async () => {
    const tree = join(workDir, 'tree');
    const longDir = `${'d'.repeat(60)}/${'e'.repeat(60)}`;
    await mkdir(join(tree, longDir), { recursive: true });
    const content = randomBytes(70_000);
    await writeFile(join(tree, longDir, 'file.bin'), content);
    await writeFile(join(tree, 'small.txt'), 'hello');
    await symlink(`${longDir}/file.bin`, join(tree, 'link.bin'));
    await link(join(tree, 'small.txt'), join(tree, 'hard.txt'));
    for (const format of ['gnu', 'pax', 'ustar']) {
      const archive = join(workDir, `tree-${format}.tar`);
      // ustar has no room for a link target over 100 bytes: there, the long path goes in its name prefix.
      const members = format === 'ustar' ? [`./${longDir}/file.bin`, './small.txt', './hard.txt'] : ['.'];
      execFileSync('tar', [`--format=${format}`, '-cf', archive, '-C', tree, ...members]);
      const index = await TarIndex.read(archive);
      for (const path of format === 'ustar' ? [`${longDir}/file.bin`] : [`${longDir}/file.bin`, 'link.bin']) {
        const entry = index.file(path)!;
        expect(entry.size, `${format} ${path}`).toBe(content.length);
        const { createReadStream } = await import('node:fs');
        expect(sha256(await readAll(createReadStream(archive, { start: entry.offset, end: entry.offset + entry.size - 1 })))).toBe(sha256(content));
      }
      expect(index.file('hard.txt')?.size ?? index.file('small.txt')?.size).toBe(5);
      expect(index.file('missing')).toBeUndefined();
    }
  });

  it('refuses what is not a tar archive', async () => {
    const notTar = join(workDir, 'not.tar');
    await writeFile(notTar, randomBytes(2048));
    await expect(TarIndex.read(notTar)).rejects.toThrow(/not a tar archive/);
  });
});

describe('sources', () => {
  it('an OCI layout index: every child image before the index, blobs once, ranges streamed from the files', async () => {
    const layout = join(workDir, 'multi');
    const written = await writeMultiArchIndex(layout, 'multi', [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ]);
    await writeImage(layout, { tag: 'single', seed: 'client/single', layers: [{ sizeBytes: 1000 }] });
    const plan = await loadSource(`${layout}:multi`);
    expect(plan.kind).toBe('oci-layout');
    expect(plan.manifests.map((manifest) => manifest.digest)).toEqual([...written.images.map((image) => image.manifestDigest), written.indexDigest]);
    expect(plan.manifests.at(-1)).toMatchObject({ mediaType: MEDIA_TYPES.ociIndex, bytes: written.index });
    const expectedBlobs = new Set(written.images.flatMap((image) => [image.configDigest, ...image.layerDigests]));
    expect(new Set(plan.blobs.map((blob) => blob.digest))).toEqual(expectedBlobs);
    const blob = plan.blobs[0]!;
    expect(sha256(await readAll(blob.open()))).toBe(blob.digest);
    const slice = await readAll(blob.open(10, 20));
    expect(slice.length).toBe(10);
    // Several images and no tag named: the command says which tags there are.
    await expect(loadSource(layout)).rejects.toThrow(/multi, single|single, multi/);
    await expect(loadSource(`${layout}:nope`)).rejects.toThrow(/no image tagged nope/);
  });

  it('a docker save archive: a schema2 manifest naming the exact layer bytes, gzip or not, links followed', async () => {
    const dir = join(workDir, 'saved');
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const plain = randomBytes(3000);
    const gzip = gzipSync(randomBytes(5000));
    await mkdir(join(dir, 'aaa'), { recursive: true });
    await mkdir(join(dir, 'bbb'), { recursive: true });
    await mkdir(join(dir, 'ccc'), { recursive: true });
    await writeFile(join(dir, 'config0123.json'), config);
    await writeFile(join(dir, 'aaa', 'layer.tar'), plain);
    await writeFile(join(dir, 'bbb', 'layer.tar'), gzip);
    // Old docker save archives link a layer seen twice to its first copy.
    await symlink('../aaa/layer.tar', join(dir, 'ccc', 'layer.tar'));
    await writeFile(
      join(dir, 'manifest.json'),
      JSON.stringify([{ Config: 'config0123.json', RepoTags: ['app:v1'], Layers: ['aaa/layer.tar', 'bbb/layer.tar', 'ccc/layer.tar'] }]),
    );
    const archive = join(workDir, 'saved.tar');
    execFileSync('tar', ['-cf', archive, '-C', dir, 'manifest.json', 'config0123.json', 'aaa', 'bbb', 'ccc']);

    for (const spec of [archive, `${archive}:app:v1`]) {
      const plan = await loadSource(spec);
      expect(plan.kind).toBe('docker-archive');
      const manifest = JSON.parse(plan.manifests[0]!.bytes.toString()) as {
        mediaType: string;
        config: { digest: string; size: number; mediaType: string };
        layers: Array<{ mediaType: string; digest: string; size: number }>;
      };
      expect(plan.manifests[0]!.digest).toBe(sha256(plan.manifests[0]!.bytes));
      expect(manifest.mediaType).toBe(MEDIA_TYPES.dockerManifest);
      expect(manifest.config).toEqual({ mediaType: MEDIA_TYPES.dockerConfig, size: config.length, digest: sha256(config) });
      expect(manifest.layers).toEqual([
        { mediaType: MEDIA_TYPES.dockerLayer, digest: sha256(plain), size: plain.length },
        { mediaType: MEDIA_TYPES.dockerLayerGzip, digest: sha256(gzip), size: gzip.length },
        { mediaType: MEDIA_TYPES.dockerLayer, digest: sha256(plain), size: plain.length },
      ]);
      expect(plan.blobs.map((blob) => blob.digest).sort()).toEqual([sha256(config), sha256(plain), sha256(gzip)].sort());
      for (const blob of plan.blobs) expect(sha256(await readAll(blob.open()))).toBe(blob.digest);
    }
    await expect(loadSource(`${archive}:other:v2`)).rejects.toThrow(/no image other:v2/);
  });
});

describe('progress', () => {
  it('not on a terminal: plain lines, no control characters', () => {
    let clock = 0;
    const lines: string[] = [];
    const out = new Writable({
      write(chunk, _encoding, callback) {
        lines.push(chunk.toString());
        callback();
      },
    });
    const progress = new Progress(out, { tty: false, now: () => clock });
    progress.start(200 * 1024 * 1024, 2);
    clock = 2000;
    progress.sent(100 * 1024 * 1024);
    progress.verification('sha256:0123456789abcdef', 50, 100);
    progress.note('sha256:0123456789ab uploaded');
    progress.stop();
    // No carriage returns or escape sequences: a plain log, not a redrawn terminal line.
    expect(lines.join('')).not.toContain('\r');
    expect(lines.join('')).not.toContain('\u001b');
    expect(lines.at(-1)).toBe('0/2 blobs, 100.0 MiB / 200.0 MiB (50%), 52.4 MB/s, verifying sha256:0123456789ab 50%\n');
  });
});
