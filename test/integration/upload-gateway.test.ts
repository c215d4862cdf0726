/**
 * The upload gateway, proven locally (docs/upload-gateway.md): the registry's Lambda handlers
 * behind an emulation of API Gateway's and Lambda's limits, and the gateway on another port.
 *
 * - skopeo and podman push an image with a 300 MiB layer through the emulated API: the upload
 *   Location sends the layer to the gateway, and it comes back byte for byte;
 * - the same push without the gateway fails at the emulator with API Gateway's 413;
 * - tickets: forged, expired, or used for another repository or session are refused;
 * - without the gateway, a chunked upload in 4 MiB PATCHes still works through the Lambda path;
 * - the container's entry point (functions/upload-gateway.ts) starts from its environment alone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loggedRequests } from '../support/client-debug-log.js';
import { createPodman, createSkopeo, ToolError, type Podman, type Skopeo } from '../support/clients.js';
import { blobDifferences, imageBlobs, pulledManifestDigest, readPulledImage } from '../support/layout-compare.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';
import { startLocalRegistry, type LocalRegistry } from '../../scripts/local/local-registry.js';
import { type API_GATEWAY_LIMITS, startApiGatewayEmulator, type Refusal } from '../../scripts/local/api-gateway-emulator.js';
import { UploadTickets } from '../../registry/services/uploads/upload-tickets.js';

const MiB = 1024 * 1024;
const LAYER_MIB = Number(process.env.UPLOAD_GATEWAY_TEST_LAYER_MIB ?? 300);
const SLOW_TEST_MS = 10 * 60 * 1000;
const TICKET_SECRET = randomBytes(32).toString('base64url');

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('pushing through the emulated API Gateway with the upload gateway', () => {
  let workDir: string;
  /** Lambda handlers behind the API Gateway emulator, upload Locations on the gateway. */
  let withGateway: LocalRegistry;
  /** The same, without a gateway: what the registry is in AWS today. */
  let withoutGateway: LocalRegistry;
  const refusalsWith: Refusal[] = [];
  const refusalsWithout: Refusal[] = [];
  let skopeo: Skopeo;
  let podman: Podman;
  let source: string;
  let bigImage: WrittenImage;

  beforeAll(async () => {
    // Short and lower case: podman limits its run root to 50 characters, and names an image
    // pulled from oci:<dir> after the directory.
    workDir = join(tmpdir(), `ugw-${randomUUID().slice(0, 8)}`);
    await mkdir(workDir);
    const started = Date.now();
    [withGateway, withoutGateway] = await Promise.all([
      startLocalRegistry({
        dataDir: join(workDir, 'with'),
        port: 0,
        quiet: true,
        apiGateway: { onRefusal: (refusal) => refusalsWith.push(refusal) },
        uploadGateway: { ticketSecret: TICKET_SECRET },
      }),
      startLocalRegistry({
        dataDir: join(workDir, 'without'),
        port: 0,
        quiet: true,
        apiGateway: { onRefusal: (refusal) => refusalsWithout.push(refusal) },
      }),
    ]);
    skopeo = await createSkopeo(join(workDir, 'skopeo'));
    podman = await createPodman(join(workDir, 'podman'));
    await mkdir(join(workDir, 'pulled'));
    source = join(workDir, 'source');
    bigImage = await writeImage(source, {
      tag: 'big',
      seed: 'upload-gateway/big',
      layers: [{ sizeBytes: 64 * 1024 }, { sizeBytes: LAYER_MIB * MiB }],
    });
    console.info(`[upload-gateway] registries started and a ${LAYER_MIB} MiB layer written in ${seconds(started)}`);
  }, SLOW_TEST_MS);

  afterAll(async () => {
    await Promise.all([withGateway?.stop(), withoutGateway?.stop()]);
    await podman?.destroy();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  const hostOf = (url: string) => new URL(url).host;
  const ref = (registry: LocalRegistry, repositoryAndTag: string) => `docker://${hostOf(registry.url)}/${repositoryAndTag}`;

  /** Where a containers/image client sent the bodies of its uploads, and where it opened them. */
  function uploadHosts(log: string): { opened: string[]; sent: string[] } {
    const requests = loggedRequests(log).filter((request) => request.url.includes('/blobs/uploads/'));
    return {
      opened: unique(requests.filter((request) => request.method === 'POST').map((request) => new URL(request.url).host)),
      sent: unique(requests.filter((request) => request.method === 'PATCH' || request.method === 'PUT').map((request) => new URL(request.url).host)),
    };
  }

  test(
    `skopeo pushes an image with a ${LAYER_MIB} MiB layer through the emulated API and pulls it back byte-identical`,
    async () => {
      const started = Date.now();
      const memory = trackPeakRss();
      const pushed = await skopeo.copy(`oci:${source}:big`, ref(withGateway, 'skopeo/big:v1'), ['--preserve-digests', '--debug']);
      const pushSeconds = seconds(started);
      const rss = memory.stop();

      // Sessions were opened through API Gateway; every body went to the gateway.
      expect(uploadHosts(pushed.stderr)).toEqual({ opened: [hostOf(withGateway.url)], sent: [hostOf(withGateway.uploadGatewayUrl!)] });
      expect(refusalsWith).toEqual([]);

      const pulled = join(workDir, 'pulled', 'skopeo');
      const pullStarted = Date.now();
      await skopeo.copy(ref(withGateway, 'skopeo/big:v1'), `oci:${pulled}:v1`, ['--preserve-digests']);
      console.info(
        `[upload-gateway] skopeo push ${pushSeconds} (resident memory ${rss.before} -> peak ${rss.peak} MiB), pull ${seconds(pullStarted)}`,
      );
      // Emulator, registry, gateway and s3rver share this process: the layer streamed through it.
      expect(rss.peak - rss.before).toBeLessThan(LAYER_MIB / 2);
      expect(await pulledManifestDigest(pulled, 'v1')).toBe(bigImage.manifestDigest);
      expect(await blobDifferences(source, pulled, imageBlobs(bigImage))).toEqual([]);
    },
    SLOW_TEST_MS,
  );

  test(
    `podman pushes an image with a ${LAYER_MIB} MiB layer through the emulated API, and what it pushed comes back intact`,
    async () => {
      const started = Date.now();
      await podman.pull(`oci:${source}:big`);
      const imageId = bigImage.configDigest.replace(/^sha256:/, '');
      const digestFile = join(workDir, 'podman.digest');
      const pushStarted = Date.now();
      const pushed = await podman.push(imageId, `${hostOf(withGateway.url)}/podman/big:v1`, ['--digestfile', digestFile, '--log-level=debug']);
      const pushSeconds = seconds(pushStarted);

      expect(uploadHosts(pushed.stderr)).toEqual({ opened: [hostOf(withGateway.url)], sent: [hostOf(withGateway.uploadGatewayUrl!)] });
      expect(refusalsWith).toEqual([]);

      // podman stores layers uncompressed and compresses them again on push: the layer digests are
      // its own, the content (diff_ids) and the config are the generated ones.
      const pushedDigest = (await readFile(digestFile, 'utf8')).trim();
      const pulled = join(workDir, 'pulled', 'podman');
      await skopeo.copy(ref(withGateway, 'podman/big:v1'), `oci:${pulled}:v1`, ['--preserve-digests']);
      console.info(`[upload-gateway] podman pull from layout + push ${seconds(started)} (push ${pushSeconds})`);
      expect(await pulledManifestDigest(pulled, 'v1')).toBe(pushedDigest);
      const image = await readPulledImage(pulled, 'v1');
      expect(image.manifest.config.digest).toBe(bigImage.configDigest);
      expect(image.layerDiffIds).toEqual(bigImage.diffIds);
    },
    SLOW_TEST_MS,
  );

  test(
    'the same push without the gateway fails at the emulated API Gateway with its 413',
    async () => {
      const started = Date.now();
      const failure = await skopeo.copy(`oci:${source}:big`, ref(withoutGateway, 'skopeo/big:v1'), ['--preserve-digests']).then(
        () => new Error('the push succeeded, but a layer over 10 MB cannot pass API Gateway'),
        (error: unknown) => error,
      );
      console.info(`[upload-gateway] push without gateway failed after ${seconds(started)}`);
      expect(failure).toBeInstanceOf(ToolError);
      const stderr = (failure as ToolError).stderr;
      console.info(`[upload-gateway] skopeo said: ${stderr.trim().split('\n').pop()}`);
      expect(stderr).toMatch(/413|Request Entity Too Large/);
      expect(refusalsWithout).toContainEqual(expect.objectContaining({ reason: 'request-too-large', status: 413, method: 'PATCH' }));
    },
    SLOW_TEST_MS,
  );

  test(
    'without the gateway, a chunked upload in 4 MiB PATCHes with Content-Range works through the Lambda path',
    async () => {
      const total = 52 * MiB;
      const chunkSize = 4 * MiB;
      const blob = Buffer.concat(Array.from({ length: total / MiB }, (_, index) => randomBytes(MiB).fill(index, 0, 1)));
      const digest = sha256(blob);
      const opened = await fetch(`${withoutGateway.url}/v2/chunked/app/blobs/uploads/`, { method: 'POST' });
      expect(opened.status).toBe(202);
      let location = new URL(opened.headers.get('location')!, withoutGateway.url);
      expect(location.host).toBe(hostOf(withoutGateway.url));

      // One chunk over Lambda's payload limit fails (and changes nothing); then 4 MiB chunks pass.
      const tooBig = await fetch(location, {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${5 * MiB - 1}` },
        body: blob.subarray(0, 5 * MiB),
      });
      expect(tooBig.status).toBe(500);
      expect(await tooBig.json()).toEqual({ message: 'Internal Server Error' });
      expect(refusalsWithout).toContainEqual(expect.objectContaining({ reason: 'invoke-request-too-large', status: 500 }));

      for (let start = 0; start < total; start += chunkSize) {
        const chunk = blob.subarray(start, start + chunkSize);
        const response = await fetch(location, {
          method: 'PATCH',
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${start}-${start + chunk.length - 1}` },
          body: chunk,
        });
        expect(response.status, `chunk at ${start}`).toBe(202);
        expect(response.headers.get('range')).toBe(`0-${start + chunk.length - 1}`);
        location = new URL(response.headers.get('location')!, withoutGateway.url);
      }
      location.searchParams.set('digest', digest);
      const finished = await fetch(location, { method: 'PUT' });
      expect(finished.status).toBe(201);
      expect(finished.headers.get('docker-content-digest')).toBe(digest);

      const download = await fetch(`${withoutGateway.url}/v2/chunked/app/blobs/${digest}`);
      expect(download.status).toBe(200);
      expect(sha256(new Uint8Array(await download.arrayBuffer()))).toBe(digest);
    },
    SLOW_TEST_MS,
  );

  test(
    'a monolithic PUT (containerd, BuildKit, oras) of a 40 MiB blob goes to the gateway and works',
    async () => {
      const blob = randomBytes(40 * MiB);
      const digest = sha256(blob);
      const opened = await fetch(`${withGateway.url}/v2/monolithic/app/blobs/uploads/`, { method: 'POST' });
      const location = new URL(opened.headers.get('location')!);
      expect(location.host).toBe(hostOf(withGateway.uploadGatewayUrl!));
      location.searchParams.set('digest', digest);
      const finished = await fetch(location, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body: blob });
      expect(finished.status).toBe(201);
      expect(finished.headers.get('docker-content-digest')).toBe(digest);
      // The blob's Location names the registry, not the gateway.
      expect(finished.headers.get('location')).toBe(`${withGateway.url}/v2/monolithic/app/blobs/${digest}`);
      const head = await fetch(`${withGateway.url}/v2/monolithic/app/blobs/${digest}`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe(String(blob.length));
    },
    SLOW_TEST_MS,
  );

  describe('tickets', () => {
    /** Opens a session through the emulated API; answers its gateway Location. */
    async function openSession(repository: string): Promise<URL> {
      const opened = await fetch(`${withGateway.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
      expect(opened.status).toBe(202);
      const location = new URL(opened.headers.get('location')!);
      expect(location.host).toBe(hostOf(withGateway.uploadGatewayUrl!));
      return location;
    }
    const sessionIdOf = (location: URL) => location.pathname.split('/').pop()!;
    const withTicket = (location: URL, ticket: string | undefined, path = location.pathname) => {
      const url = new URL(path, location);
      if (ticket !== undefined) url.searchParams.set('ticket', ticket);
      return url;
    };
    async function expectRefused(url: URL, status: number, code: string, message: RegExp): Promise<void> {
      const response = await fetch(url, { method: 'PATCH', headers: { 'Content-Type': 'application/octet-stream' }, body: randomBytes(64 * 1024) });
      const body = (await response.json()) as { errors: Array<{ code: string; message: string }> };
      expect(response.status, `${url.pathname}`).toBe(status);
      expect(body.errors[0]?.code).toBe(code);
      expect(body.errors[0]?.message).toMatch(message);
    }

    test('forged, tampered, expired, missing and other-repository tickets are refused; the session stays intact', async () => {
      const location = await openSession('tickets/first');
      const other = await openSession('tickets/second');
      const ticket = location.searchParams.get('ticket')!;
      const [version, claims, signature] = ticket.split('.') as [string, string, string];
      const session = sessionIdOf(location);

      const forgedSignature = `${version}.${claims}.${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`;
      const otherClaims = JSON.parse(Buffer.from(claims, 'base64url').toString()) as Record<string, unknown>;
      const tampered = `${version}.${Buffer.from(JSON.stringify({ ...otherClaims, r: 'tickets/second' })).toString('base64url')}.${signature}`;
      const wrongSecret = new UploadTickets([randomBytes(32).toString('base64url')], 3600).issue('tickets/first', session);
      const expired = new UploadTickets([TICKET_SECRET], 60, () => Date.now() - 61_000).issue('tickets/first', session);

      await expectRefused(withTicket(location, forgedSignature), 401, 'UNAUTHORIZED', /not valid/);
      await expectRefused(withTicket(location, tampered), 401, 'UNAUTHORIZED', /not valid/);
      await expectRefused(withTicket(location, wrongSecret), 401, 'UNAUTHORIZED', /not valid/);
      await expectRefused(withTicket(location, expired), 401, 'UNAUTHORIZED', /expired/);
      await expectRefused(withTicket(location, undefined), 401, 'UNAUTHORIZED', /required/);
      // An authentic ticket, reused on another repository (same session id, or the other session).
      await expectRefused(withTicket(location, ticket, `/v2/tickets/second/blobs/uploads/${session}`), 403, 'DENIED', /another upload/);
      await expectRefused(withTicket(location, ticket, other.pathname), 403, 'DENIED', /another upload/);
      // The gateway is for upload bodies only, whatever the ticket.
      const manifest = await fetch(withTicket(location, ticket, '/v2/tickets/first/manifests/latest'));
      expect(manifest.status).toBe(403);
      expect(await manifest.text()).toContain(withGateway.url);
      const post = await fetch(withTicket(location, ticket, '/v2/tickets/first/blobs/uploads/'), { method: 'POST' });
      expect(post.status).toBe(403);

      // Nothing was written: the session is still empty, and its own ticket still finishes it.
      const status = await fetch(`${withGateway.url}/v2/tickets/first/blobs/uploads/${session}`);
      expect(status.status).toBe(204);
      expect(status.headers.get('range')).toBe('0-0');
      const blob = randomBytes(MiB);
      const finishing = new URL(location);
      finishing.searchParams.set('digest', sha256(blob));
      expect((await fetch(finishing, { method: 'PUT', body: blob })).status).toBe(201);
    });

    test('every Location the gateway answers carries a fresh ticket for the same session', async () => {
      const location = await openSession('tickets/fresh');
      const patched = await fetch(location, { method: 'PATCH', body: randomBytes(MiB) });
      expect(patched.status).toBe(202);
      const next = new URL(patched.headers.get('location')!);
      expect(`${next.origin}${next.pathname}`).toBe(`${location.origin}${location.pathname}`);
      const check = new UploadTickets([TICKET_SECRET], 3600).verify(next.searchParams.get('ticket')!);
      expect(check).toMatchObject({ valid: true, claims: { repository: 'tickets/fresh', sessionId: sessionIdOf(location) } });
      // Status through the registry also hands out a gateway Location (e.g. to resume after expiry).
      const status = await fetch(`${withGateway.url}/v2/tickets/fresh/blobs/uploads/${sessionIdOf(location)}`);
      expect(status.headers.get('range')).toBe(`0-${MiB - 1}`);
      expect(new URL(status.headers.get('location')!).host).toBe(hostOf(withGateway.uploadGatewayUrl!));
    });
  });

  test(
    'the container entry point starts from its environment, answers /healthz and takes an upload',
    async () => {
      const port = await freePort();
      const gatewayUrl = `http://127.0.0.1:${port}`;
      const { config } = withGateway;
      const child = spawn(process.execPath, ['--import', 'tsx', 'functions/upload-gateway.ts'], {
        env: {
          ...process.env,
          PORT: String(port),
          HOST: '127.0.0.1',
          AWS_REGION: config.region,
          AWS_ACCESS_KEY_ID: 'S3RVER',
          AWS_SECRET_ACCESS_KEY: 'S3RVER',
          TABLE_NAME: config.tableName,
          BUCKET_NAME: config.bucketName,
          DYNAMODB_ENDPOINT: config.dynamoEndpoint,
          S3_ENDPOINT: config.s3Endpoint,
          UPLOAD_GATEWAY_URL: gatewayUrl,
          UPLOAD_TICKET_SECRET: TICKET_SECRET,
          PUBLIC_BASE_URL: withGateway.url,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      try {
        await waitForLine(child, /upload gateway listening/);
        const health = await fetch(`${gatewayUrl}/healthz`);
        expect(health.status).toBe(200);

        // A session the registry opened, continued on this gateway process with the same ticket.
        const opened = await fetch(`${withGateway.url}/v2/entrypoint/app/blobs/uploads/`, { method: 'POST' });
        const location = new URL(opened.headers.get('location')!);
        const onChild = new URL(`${location.pathname}${location.search}`, gatewayUrl);
        const blob = randomBytes(24 * MiB);
        const patched = await fetch(onChild, { method: 'PATCH', body: blob });
        expect(patched.status).toBe(202);
        expect(new URL(patched.headers.get('location')!).origin).toBe(gatewayUrl);
        const finishing = new URL(patched.headers.get('location')!);
        finishing.searchParams.set('digest', sha256(blob));
        const finished = await fetch(finishing, { method: 'PUT' });
        expect(finished.status).toBe(201);
        expect((await fetch(`${withGateway.url}/v2/entrypoint/app/blobs/${sha256(blob)}`, { method: 'HEAD' })).status).toBe(200);
      } finally {
        child.kill('SIGTERM');
        if (child.exitCode === null) await once(child, 'exit');
      }
      expect(child.exitCode).toBe(0);
    },
    SLOW_TEST_MS,
  );
});

describe('the API Gateway emulator', () => {
  /** A function that says how many body bytes it got, optionally after a delay or with a big answer. */
  async function emulator(limits: Partial<typeof API_GATEWAY_LIMITS> = {}) {
    const refusals: Refusal[] = [];
    const running = await startApiGatewayEmulator(
      async (event) => {
        const delay = Number(event.queryStringParameters?.delay ?? 0);
        if (delay) await new Promise((resolve) => setTimeout(resolve, delay));
        const received = event.body === undefined ? 0 : Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8').length;
        const answer = 'x'.repeat(Number(event.queryStringParameters?.answer ?? 0));
        return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ received, answer }) };
      },
      { limits, onRefusal: (refusal) => refusals.push(refusal) },
    );
    return { ...running, refusals };
  }

  test('passes a body Lambda can take, whole; refuses one over 10 MB with 413 and one over ~4.4 MiB with 500', async () => {
    const api = await emulator();
    try {
      const post = (bytes: number, chunked = false) =>
        fetch(`${api.url}/echo`, {
          method: 'PATCH',
          headers: { 'Content-Type': 'application/octet-stream' },
          body: chunked ? streamOf(randomBytes(bytes)) : randomBytes(bytes),
          ...(chunked ? { duplex: 'half' } : {}),
        } as RequestInit);
      const fits = await post(4.4 * MiB);
      expect(fits.status).toBe(200);
      expect(((await fits.json()) as { received: number }).received).toBe(Math.floor(4.4 * MiB));

      const overLambda = await post(4.5 * MiB);
      expect(overLambda.status).toBe(500);
      expect(await overLambda.json()).toEqual({ message: 'Internal Server Error' });

      for (const chunked of [false, true]) {
        const overApi = await post(11 * MiB, chunked);
        expect(overApi.status).toBe(413);
        expect(await overApi.json()).toEqual({ message: 'Request Entity Too Large' });
      }
      expect(api.refusals.map((refusal) => refusal.reason)).toEqual(['invoke-request-too-large', 'request-too-large', 'request-too-large']);
    } finally {
      await api.stop();
    }
  });

  test('answers 503 when the function takes longer than the integration timeout, and 500 for an answer over 6 MB', async () => {
    const api = await emulator({ integrationTimeoutMs: 200 });
    try {
      const slow = await fetch(`${api.url}/slow?delay=400`);
      expect(slow.status).toBe(503);
      expect(await slow.json()).toEqual({ message: 'Service Unavailable' });
      const big = await fetch(`${api.url}/big?answer=${7 * 1000 * 1000}`);
      expect(big.status).toBe(500);
      expect(api.refusals.map((refusal) => refusal.reason)).toEqual(['integration-timeout', 'invoke-response-too-large']);
    } finally {
      await api.stop();
    }
  });
});

function streamOf(bytes: Buffer): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.subarray(offset, offset + MiB));
      offset += MiB;
    },
  });
}

/** Samples this process's resident memory (MiB) until stopped. */
function trackPeakRss(): { stop(): { before: number; peak: number } } {
  const mib = () => Math.round(process.memoryUsage.rss() / MiB);
  const before = mib();
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, mib())), 100);
  return {
    stop() {
      clearInterval(timer);
      return { before, peak: Math.max(peak, mib()) };
    },
  };
}

function unique(values: string[]): string[] {
  return [...new Set(values)].sort();
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs = 60_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${output}`)), timeoutMs);
    const read = (data: Buffer) => {
      output += data.toString();
      if (pattern.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', read);
    child.stderr?.on('data', read);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the gateway exited with ${code}:\n${output}`));
    });
  });
}
