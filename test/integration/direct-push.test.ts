/**
 * The fast path (docs/direct-push.md) on the local stack: `npm run push` sends large layers
 * straight to S3 (s3rver) with presigned part URLs, and the registry proves each digest across
 * several polls before the blob becomes visible.
 *
 * - an OCI layout with a 1 GiB layer is pushed by the command and pulled back by skopeo byte for
 *   byte; the proof takes several requests (the step budget is lowered to 2 s here);
 * - pushing again uploads nothing;
 * - a client that uploads other bytes than it claims gets DIGEST_INVALID, and nothing is stored
 *   under the claimed digest;
 * - part URLs name one session's key and upload; what a URL of one session can and cannot do to
 *   another (see the note there on what s3rver does not check);
 * - a `docker save` archive (made by skopeo's docker-archive) becomes a Docker schema2 image;
 * - with authentication on (cognito-local), the command logs in through the token endpoint.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startLocalRegistry, type LocalRegistry } from '../../scripts/local/local-registry.js';
import { LOCAL_CREDENTIALS } from '../../scripts/local/local-credentials.js';
import type { PushResult } from '../../scripts/push/push.js';
import { createSkopeo, type Skopeo } from '../support/clients.js';
import { blobDifferences, imageBlobs, pulledManifestDigest, readPulledImage } from '../support/layout-compare.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';

const MiB = 1024 * 1024;
const LAYER_MIB = Number(process.env.DIRECT_PUSH_TEST_LAYER_MIB ?? 1024);
const SLOW_TEST_MS = 15 * 60 * 1000;
const ADMIN = { username: 'admin', password: 'Admin-Password-1' };
/** Small enough that a 1 GiB proof takes several polls here. */
const STEP_BUDGET_MS = 2000;

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `scripts/push.ts` as `npm run push` would, in its own process. */
function runPush(args: string[], stdin?: string): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/push.ts', ...args], {
      cwd: join(import.meta.dirname, '..', '..'),
      env: { ...process.env, NODE_NO_WARNINGS: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}

async function pushed(args: string[], stdin?: string): Promise<PushResult> {
  const result = await runPush([...args, '--json'], stdin);
  if (result.code !== 0) throw new Error(`push exited with ${result.code}:\n${result.stderr}`);
  return JSON.parse(result.stdout) as PushResult;
}

const hostOf = (registry: LocalRegistry) => new URL(registry.url).host;

describe('npm run push: large blobs straight to S3', () => {
  let workDir: string;
  let registry: LocalRegistry;
  let skopeo: Skopeo;
  let source: string;
  let bigImage: WrittenImage;
  let s3: S3Client;

  beforeAll(async () => {
    workDir = join(tmpdir(), `dpush-${randomUUID().slice(0, 8)}`);
    await mkdir(join(workDir, 'pulled'), { recursive: true });
    const started = Date.now();
    registry = await startLocalRegistry({
      dataDir: join(workDir, 'data'),
      port: 0,
      quiet: true,
      overrides: { directUpload: { stepBudgetMs: STEP_BUDGET_MS } },
    });
    skopeo = await createSkopeo(join(workDir, 'skopeo'));
    s3 = new S3Client({ region: 'us-east-1', endpoint: registry.config.s3Endpoint, forcePathStyle: true, credentials: LOCAL_CREDENTIALS });
    source = join(workDir, 'source');
    // Uncompressed, to spare these shared cores 30 s of gzip: the bytes are pseudo-random either way.
    bigImage = await writeImage(source, {
      tag: 'v1',
      seed: 'direct-push/big',
      layers: [{ sizeBytes: 64 * 1024 }, { sizeBytes: LAYER_MIB * MiB, compression: 'none' }],
    });
    console.info(`[direct-push] registry started and a ${LAYER_MIB} MiB layer written in ${seconds(started)}`);
  }, SLOW_TEST_MS);

  afterAll(async () => {
    await registry?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test(
    `pushes an OCI layout with a ${LAYER_MIB} MiB layer; skopeo pulls it back byte for byte; a second push uploads nothing`,
    async () => {
      const destination = `${hostOf(registry)}/direct/big:v1`;
      const first = await pushed([`${source}:v1`, destination, '--insecure-http', '--concurrency', '4', '--part-size', '32']);
      console.info(
        `[direct-push] push ${first.seconds.toFixed(1)} s (${first.megabytesPerSecond.toFixed(1)} MB/s): parts ${first.directSeconds.parts.toFixed(1)} s, ` +
          `verification ${first.directSeconds.verification.toFixed(1)} s in ${first.verificationRequests} requests, peak RSS ${first.peakRssMiB} MiB`,
      );
      expect(first.digest).toBe(bigImage.manifestDigest);
      expect(first.blobs).toEqual({ existing: 0, mounted: 0, monolithic: 2, direct: 1, streamed: 0 });
      // The proof of the big layer was spread over several requests (completion, then polls).
      expect(first.verificationRequests).toBeGreaterThan(2);
      // The layer was streamed from disk, never held.
      expect(first.peakRssMiB).toBeLessThan(LAYER_MIB / 2);

      const pulled = join(workDir, 'pulled', 'big');
      await skopeo.copy(`docker://${destination}`, `oci:${pulled}:v1`, ['--preserve-digests']);
      expect(await pulledManifestDigest(pulled, 'v1')).toBe(bigImage.manifestDigest);
      expect(await blobDifferences(source, pulled, imageBlobs(bigImage))).toEqual([]);

      const second = await pushed([`${source}:v1`, destination, '--insecure-http']);
      expect(second.blobs).toEqual({ existing: 3, mounted: 0, monolithic: 0, direct: 0, streamed: 0 });
      expect(second.bytesUploaded).toBe(0);
      expect(second.digest).toBe(bigImage.manifestDigest);

      // Into another repository, mounting from the first: nothing is uploaded either.
      const mounted = await pushed([`${source}:v1`, `${hostOf(registry)}/direct/copy:v1`, '--insecure-http', '--mount-from', 'direct/big']);
      expect(mounted.blobs).toEqual({ existing: 0, mounted: 3, monolithic: 0, direct: 0, streamed: 0 });
    },
    SLOW_TEST_MS,
  );

  /** Opens a session and starts a direct upload of `size` bytes claimed to hash to `digest`. */
  async function startDirect(repository: string, digest: string, size: number, query = '') {
    const opened = await fetch(`${registry.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    expect(opened.status).toBe(202);
    const uuid = opened.headers.get('docker-upload-uuid')!;
    const started = await fetch(
      `${registry.url}/v2/${repository}/blobs/uploads/${uuid}/direct?digest=${digest}&size=${size}&partSize=${5 * MiB}${query}`,
      {
        method: 'POST',
      },
    );
    expect(started.status).toBe(200);
    const plan = (await started.json()) as { partCount: number; parts: Array<{ partNumber: number; offset: number; size: number; url: string }> };
    return { uuid, plan, direct: `${registry.url}/v2/${repository}/blobs/uploads/${uuid}/direct` };
  }

  async function putPart(url: string, bytes: Uint8Array): Promise<{ status: number; etag: string | null; body: string }> {
    const response = await fetch(url, { method: 'PUT', body: bytes });
    return { status: response.status, etag: response.headers.get('etag'), body: await response.text() };
  }

  /** Completes and polls until the registry decides; answers the last response. */
  async function completeAndPoll(direct: string, etags: (string | null)[]): Promise<Response> {
    let response = await fetch(direct, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ parts: etags.map((etag, index) => ({ partNumber: index + 1, etag })) }),
    });
    while (response.status === 202) {
      await response.arrayBuffer();
      response = await fetch(direct);
    }
    return response;
  }

  async function objectExists(key: string): Promise<boolean> {
    return s3.send(new HeadObjectCommand({ Bucket: registry.config.bucketName, Key: key })).then(
      () => true,
      (error: { name?: string }) => {
        if (error.name === 'NotFound') return false;
        throw error;
      },
    );
  }

  test('other bytes than claimed: DIGEST_INVALID, and nothing is stored under the claimed digest', async () => {
    const claimed = randomBytes(12 * MiB);
    const sent = Buffer.from(claimed);
    sent[11 * MiB] ^= 0x01;
    const digest = sha256(claimed);
    const { uuid, plan, direct } = await startDirect('direct/liar', digest, claimed.length);
    expect(plan.partCount).toBe(3);
    const etags = [];
    for (const part of plan.parts) {
      const put = await putPart(part.url, sent.subarray(part.offset, part.offset + part.size));
      expect(put.status).toBe(200);
      etags.push(put.etag);
    }
    const decided = await completeAndPoll(direct, etags);
    expect(decided.status).toBe(400);
    expect(((await decided.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('DIGEST_INVALID');

    expect((await fetch(`${registry.url}/v2/direct/liar/blobs/${digest}`, { method: 'HEAD' })).status).toBe(404);
    expect((await fetch(`${registry.url}/v2/direct/liar/blobs/${sha256(sent)}`, { method: 'HEAD' })).status).toBe(404);
    // The session is over, and the assembled object is gone from the bucket.
    expect((await fetch(direct)).status).toBe(404);
    expect(await objectExists(`blobs/${uuid}`)).toBe(false);
    // Nor can another repository mount what was never recorded.
    const mount = await fetch(`${registry.url}/v2/direct/thief/blobs/uploads/?mount=${digest}&from=direct/liar`, { method: 'POST' });
    expect(mount.status).toBe(202);
  });

  test('part URLs name their session key and upload; one session cannot complete with another session part', async () => {
    const bytesA = randomBytes(12 * MiB);
    const bytesB = randomBytes(12 * MiB);
    const a = await startDirect('direct/keys', sha256(bytesA), bytesA.length);
    const b = await startDirect('direct/keys', sha256(bytesB), bytesB.length);
    const urlA = new URL(a.plan.parts[0]!.url);
    // Bound by name: the key of A's session, A's upload id, one part; signed (host only) and short-lived.
    expect(urlA.pathname).toBe(`/${registry.config.bucketName}/blobs/${a.uuid}`);
    expect(urlA.searchParams.get('partNumber')).toBe('1');
    expect(urlA.searchParams.get('uploadId')).toMatch(/\w+/);
    expect(urlA.searchParams.get('uploadId')).not.toBe(new URL(b.plan.parts[0]!.url).searchParams.get('uploadId'));
    expect(urlA.searchParams.get('X-Amz-SignedHeaders')).toBe('host');
    expect(Number(urlA.searchParams.get('X-Amz-Expires'))).toBeLessThanOrEqual(900);

    // A's URLs are handed out only through A's own session and repository.
    expect((await fetch(`${registry.url}/v2/direct/other/blobs/uploads/${a.uuid}/direct/parts?parts=1`)).status).toBe(404);

    // B's first part sent with A's URL lands in A's upload: B cannot be completed with it.
    const stolen = await putPart(urlA.toString(), bytesB.subarray(0, 5 * MiB));
    expect(stolen.status).toBe(200);
    const etagsB = [stolen.etag];
    for (const part of b.plan.parts.slice(1)) etagsB.push((await putPart(part.url, bytesB.subarray(part.offset, part.offset + part.size))).etag);
    const refused = await completeAndPoll(b.direct, etagsB);
    expect(refused.status).toBe(400);
    expect(await refused.text()).toMatch(/BLOB_UPLOAD_INVALID.*InvalidPart/);

    // A URL edited to name B's key: 403 SignatureDoesNotMatch (the path is signed), from S3 and
    // from the S3 stand-in, which checks presigned signatures too.
    const edited = new URL(urlA);
    edited.pathname = edited.pathname.replace(a.uuid, b.uuid);
    const editedAnswer = await fetch(edited, { method: 'PUT', body: bytesB.subarray(0, 5 * MiB) });
    expect(editedAnswer.status).toBe(403);
    expect(await editedAnswer.text()).toContain('<Code>SignatureDoesNotMatch</Code>');
    expect(await objectExists(`blobs/${b.uuid}`)).toBe(false);

    // B, with its own URL for part 1, completes.
    etagsB[0] = (await putPart(b.plan.parts[0]!.url, bytesB.subarray(0, 5 * MiB))).etag;
    expect((await completeAndPoll(b.direct, etagsB)).status).toBe(201);
    expect(await objectExists(`blobs/${b.uuid}`)).toBe(true);
    expect((await fetch(`${registry.url}/v2/direct/keys/blobs/${sha256(bytesB)}`, { method: 'HEAD' })).status).toBe(200);

    // A got B's bytes in its part 1: its proof fails and nothing is stored under A's digest.
    const etagsA = [stolen.etag];
    for (const part of a.plan.parts.slice(1)) etagsA.push((await putPart(part.url, bytesA.subarray(part.offset, part.offset + part.size))).etag);
    // (s3rver keeps the last bytes of a part; the ETag of the edited URL's upload is the same as the stolen one's.)
    const failed = await completeAndPoll(a.direct, etagsA);
    expect(await failed.text()).toContain('DIGEST_INVALID');
    expect((await fetch(`${registry.url}/v2/direct/keys/blobs/${sha256(bytesA)}`, { method: 'HEAD' })).status).toBe(404);
  });

  test('an expired part URL is refused by S3; fresh ones for the same parts are handed out', async () => {
    const bytes = randomBytes(6 * MiB);
    const { plan, direct } = await startDirect('direct/expiry', sha256(bytes), bytes.length, '&expires=1');
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const expired = await putPart(plan.parts[0]!.url, bytes.subarray(0, 5 * MiB));
    expect(expired.status).toBe(403);
    expect(expired.body).toMatch(/Request has expired/);

    const renewed = await fetch(`${direct}/parts?parts=1-2`);
    expect(renewed.status).toBe(200);
    const { parts } = (await renewed.json()) as { parts: Array<{ url: string; offset: number; size: number }> };
    const etags = [];
    for (const part of parts) etags.push((await putPart(part.url, bytes.subarray(part.offset, part.offset + part.size))).etag);
    expect((await completeAndPoll(direct, etags)).status).toBe(201);
  });

  test('a direct session takes no PATCH: its bytes go to S3', async () => {
    const { uuid } = await startDirect('direct/patch', sha256(Buffer.from('x')), 6 * MiB);
    const patched = await fetch(`${registry.url}/v2/direct/patch/blobs/uploads/${uuid}`, { method: 'PATCH', body: randomBytes(1024) });
    expect(patched.status).toBe(400);
    expect(await patched.text()).toContain('direct upload');
  });

  test(
    'a docker save archive becomes a Docker schema2 image with the exact layer bytes',
    async () => {
      const small = join(workDir, 'small');
      const image = await writeImage(small, {
        tag: 'v1',
        seed: 'direct-push/docker-save',
        layers: [{ sizeBytes: 256 * 1024 }, { sizeBytes: 40 * MiB }],
      });
      const archive = join(workDir, 'saved.tar');
      // skopeo's docker-archive is the `docker save` format: manifest.json, <config>.json, layer tars (uncompressed).
      await skopeo.copy(`oci:${small}:v1`, `docker-archive:${archive}:saved/app:v1`);
      const result = await pushed([archive, `${hostOf(registry)}/direct/saved:v1`, '--insecure-http', '--part-size', '8']);
      expect(result.source).toBe('docker-archive');
      expect(result.blobs).toMatchObject({ direct: 1, monolithic: 2 });

      const pulled = join(workDir, 'pulled', 'saved');
      await skopeo.copy(`docker://${hostOf(registry)}/direct/saved:v1`, `oci:${pulled}:v1`, ['--preserve-digests']);
      expect(await pulledManifestDigest(pulled, 'v1')).toBe(result.digest);
      const back = await readPulledImage(pulled, 'v1');
      expect(back.manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
      expect(back.manifest.config.digest).toBe(image.configDigest);
      // The archive holds the layers uncompressed: their digests are the image's diff_ids.
      expect(back.manifest.layers.map((layer) => layer.digest)).toEqual(image.diffIds);
      expect(back.manifest.layers.every((layer) => layer.mediaType === 'application/vnd.docker.image.rootfs.diff.tar')).toBe(true);
      expect(back.layerDiffIds).toEqual(image.diffIds);
    },
    SLOW_TEST_MS,
  );
});

describe('npm run push with authentication on', () => {
  let workDir: string;
  let registry: LocalRegistry;
  let source: string;
  let image: WrittenImage;

  beforeAll(async () => {
    workDir = join(tmpdir(), `dpush-auth-${randomUUID().slice(0, 8)}`);
    await mkdir(workDir, { recursive: true });
    registry = await startLocalRegistry({ dataDir: join(workDir, 'data'), port: 0, quiet: true, auth: 'cognito', admin: ADMIN });
    source = join(workDir, 'source');
    image = await writeImage(source, {
      tag: 'v1',
      seed: 'direct-push/auth',
      layers: [{ sizeBytes: 64 * 1024 }, { sizeBytes: 24 * MiB, compression: 'none' }],
    });
  }, SLOW_TEST_MS);

  afterAll(async () => {
    await registry?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test(
    'logs in through the token endpoint with --password-stdin and pushes; skopeo with the same account pulls it back',
    async () => {
      const destination = `${hostOf(registry)}/team/app:v1`;
      const result = await pushed(
        [source, destination, '--insecure-http', '--username', ADMIN.username, '--password-stdin', '--part-size', '5'],
        `${ADMIN.password}\n`,
      );
      expect(result.blobs).toMatchObject({ direct: 1, monolithic: 2 });
      const skopeo = await createSkopeo(join(workDir, 'skopeo'));
      const pulled = join(workDir, 'pulled');
      await skopeo.copy(`docker://${destination}`, `oci:${pulled}:v1`, ['--preserve-digests', '--src-creds', `${ADMIN.username}:${ADMIN.password}`]);
      expect(await pulledManifestDigest(pulled, 'v1')).toBe(image.manifestDigest);
      expect(await blobDifferences(source, pulled, imageBlobs(image))).toEqual([]);
    },
    SLOW_TEST_MS,
  );

  test('a wrong password, or none, is refused', async () => {
    const destination = `${hostOf(registry)}/team/refused:v1`;
    const wrong = await runPush([source, destination, '--insecure-http', '--username', ADMIN.username, '--password-stdin'], 'not-the-password\n');
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/login to .* failed/);
    const anonymous = await runPush([source, destination, '--insecure-http']);
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toMatch(/401.*log in/);
  });

  test('the direct-upload routes need push on the repository: no token, a 401 challenge for pull,push', async () => {
    const path = `/v2/team/app/blobs/uploads/${randomUUID()}/direct`;
    for (const [method, suffix] of [
      ['POST', `?digest=${sha256(Buffer.from('x'))}&size=1`],
      ['GET', ''],
      ['PUT', ''],
      ['GET', '/parts?parts=1'],
    ] as const) {
      const response = await fetch(`${registry.url}${path}${suffix}`, { method });
      expect(response.status, `${method} ${suffix}`).toBe(401);
      expect(response.headers.get('www-authenticate')).toContain('scope="repository:team/app:pull,push"');
    }
  });
});

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}
