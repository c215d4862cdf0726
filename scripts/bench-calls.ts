/**
 * `npm run bench:calls`: the DynamoDB and S3 calls the registry makes for each kind of client
 * request and for whole workflows (a skopeo push of four layers and its pull, a GC run with
 * nothing to do), counted by the SDK middleware of registry/storage/call-counter.ts against the
 * local stand-ins. In AWS these calls are the latency and the bill (issue: "every request at
 * the minimum"). Prints a Markdown table; `--json` prints the counts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { collectGarbage } from '../registry/services/gc/index.js';
import { CallCounter, type CallCounts } from '../registry/storage/call-counter.js';
import { createAwsClients } from '../registry/storage/aws-clients.js';
import { AccessStore } from '../registry/storage/access-store.js';
import { LOCAL_CREDENTIALS } from './local/local-credentials.js';
import { startLocalRegistry } from './local/local-registry.js';
import { writeImage } from '../test/support/oci-image.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

interface Row {
  flow: string;
  counts: CallCounts;
}

function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const dataDir = await mkdtemp(join(tmpdir(), 'bench-calls-'));
  const counter = new CallCounter();
  const registry = await startLocalRegistry({ dataDir, port: 0, quiet: true, callCounter: counter });
  const url = registry.url;
  const host = new URL(url).host;
  const rows: Row[] = [];
  const measure = async (flow: string, work: () => Promise<unknown>) => {
    counter.take();
    await work();
    rows.push({ flow, counts: counter.take() });
  };
  const expectStatus = async (response: Promise<Response>, status: number) => {
    const answer = await response;
    if (answer.status !== status) throw new Error(`${answer.url}: expected ${status}, got ${answer.status} ${await answer.text()}`);
    return answer;
  };
  const request = (path: string, init: RequestInit = {}) => fetch(path.startsWith('http') ? path : `${url}${path}`, { redirect: 'manual', ...init });
  try {
    // A small image to read: config and three layers.
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const layers = [1, 2, 3].map((n) => randomBytes(1024 * n));
    for (const blob of [config, ...layers])
      await expectStatus(request(`/v2/bench/app/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob }), 201);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: layers.map((layer) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length })),
    });
    const headers = { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' };
    await measure('manifest PUT by tag, 3 layers', () =>
      expectStatus(request('/v2/bench/app/manifests/v1', { method: 'PUT', headers, body: manifest }), 201),
    );
    const another = JSON.stringify({ ...JSON.parse(manifest), annotations: { 'bench.second': 'yes' } });
    await measure('manifest PUT by tag, 3 layers, warm instance', () =>
      expectStatus(request('/v2/bench/app/manifests/v2', { method: 'PUT', headers, body: another }), 201),
    );
    await measure('manifest HEAD by tag', () => expectStatus(request('/v2/bench/app/manifests/v1', { method: 'HEAD' }), 200));
    await measure('manifest GET by tag', () => expectStatus(request('/v2/bench/app/manifests/v1'), 200));
    await measure('manifest GET by digest', () => expectStatus(request(`/v2/bench/app/manifests/${sha256(manifest)}`), 200));
    await measure('blob HEAD', () => expectStatus(request(`/v2/bench/app/blobs/${sha256(layers[0]!)}`, { method: 'HEAD' }), 200));
    await measure('blob GET (307)', () => expectStatus(request(`/v2/bench/app/blobs/${sha256(layers[0]!)}`), 307));
    await measure('blob HEAD, not in the repository (404)', () =>
      expectStatus(request(`/v2/bench/app/blobs/${sha256('never pushed')}`, { method: 'HEAD' }), 404),
    );
    await measure('blob GET, not in the repository (404)', () => expectStatus(request(`/v2/bench/app/blobs/${sha256('never pushed')}`), 404));
    await measure('tags list', () => expectStatus(request('/v2/bench/app/tags/list'), 200));

    const body = randomBytes(MiB);
    let location = '';
    await measure('POST (open an upload)', async () => {
      location = (await expectStatus(request('/v2/bench/app/blobs/uploads/', { method: 'POST' }), 202)).headers.get('location')!;
    });
    await measure('PATCH with the whole body (1 MiB)', async () => {
      location = (await expectStatus(request(location, { method: 'PATCH', body }), 202)).headers.get('location')!;
    });
    await measure('PUT ?digest= after the PATCH', () => {
      const finish = new URL(location, url);
      finish.searchParams.set('digest', sha256(body));
      return expectStatus(request(finish.href, { method: 'PUT' }), 201);
    });
    const large = randomBytes(12 * MiB);
    await measure('POST + PATCH with the whole body (12 MiB) + PUT ?digest=', async () => {
      const opened = (await expectStatus(request('/v2/bench/app/blobs/uploads/', { method: 'POST' }), 202)).headers.get('location')!;
      const next = (await expectStatus(request(opened, { method: 'PATCH', body: large }), 202)).headers.get('location')!;
      const finish = new URL(next, url);
      finish.searchParams.set('digest', sha256(large));
      await expectStatus(request(finish.href, { method: 'PUT' }), 201);
    });
    // The upload session item keeps one size whatever the part count (it listed every part's
    // ETag): the capacity of a chunked upload grows with its chunks, not with their square.
    await measure('chunked upload, 512 MiB in 4 MiB chunks (POST, 128 PATCH, PUT)', async () => {
      let next = (await expectStatus(request('/v2/bench/app/blobs/uploads/', { method: 'POST' }), 202)).headers.get('location')!;
      const hash = createHash('sha256');
      for (let offset = 0; offset < 512 * MiB; offset += 4 * MiB) {
        const chunk = randomBytes(4 * MiB);
        hash.update(chunk);
        const range = `${offset}-${offset + chunk.length - 1}`;
        next = (await expectStatus(request(next, { method: 'PATCH', body: chunk, headers: { 'Content-Range': range } }), 202)).headers.get(
          'location',
        )!;
      }
      const finish = new URL(next, url);
      finish.searchParams.set('digest', `sha256:${hash.digest('hex')}`);
      await expectStatus(request(finish.href, { method: 'PUT' }), 201);
    });
    const monolithic = randomBytes(MiB);
    await measure('POST + PUT monolithic (1 MiB)', async () => {
      const opened = (await expectStatus(request('/v2/bench/app/blobs/uploads/', { method: 'POST' }), 202)).headers.get('location')!;
      const finish = new URL(opened, url);
      finish.searchParams.set('digest', sha256(monolithic));
      await expectStatus(request(finish.href, { method: 'PUT', body: monolithic }), 201);
    });
    const oneShot = randomBytes(MiB);
    await measure('POST ?digest= (1 MiB, one request)', () =>
      expectStatus(request(`/v2/bench/app/blobs/uploads/?digest=${sha256(oneShot)}`, { method: 'POST', body: oneShot }), 201),
    );
    await expectStatus(request('/v2/bench/app/manifests/doomed', { method: 'PUT', headers, body: manifest }), 201);
    await measure('tag DELETE', () => expectStatus(request('/v2/bench/app/manifests/doomed', { method: 'DELETE' }), 202));

    const layout = join(dataDir, 'layout');
    await writeImage(layout, {
      tag: 'big',
      seed: 'bench-calls',
      layers: [1, 10, 50, 100].map((size) => ({ sizeBytes: size * MiB, compression: 'none' as const })),
    });
    await measure('skopeo push, 4 layers (1/10/50/100 MiB)', () =>
      run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:big`, `docker://${host}/bench/big:v1`]),
    );
    await measure('skopeo pull of that image', () =>
      run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${host}/bench/big:v1`, `oci:${join(dataDir, 'pulled')}:v1`]),
    );
    // GC runs with clients of its own (the maintenance function's), counted the same way.
    const gc = createAwsClients(registry.config, LOCAL_CREDENTIALS, counter);
    await measure('GC with nothing to delete', () =>
      collectGarbage({ dynamo: gc.dynamo, s3: gc.s3, tableName: registry.config.tableName, bucketName: registry.config.bucketName }),
    );
    await measureTokens(rows, counter, dataDir);
  } finally {
    await registry.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
  if (json) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  console.log('| request / flow | DynamoDB calls | S3 calls | capacity units | by operation |');
  console.log('|---|---|---|---|---|');
  for (const { flow, counts } of rows) {
    const entries = Object.entries(counts.calls).sort(([a], [b]) => a.localeCompare(b));
    const total = (service: string) => entries.filter(([name]) => name.startsWith(`${service}.`)).reduce((sum, [, n]) => sum + n, 0);
    const detail = entries.map(([name, n]) => `${name.replace(/^(DynamoDB|S3)\./, '')} ${n}`).join(', ');
    console.log(`| ${flow} | ${total('DynamoDB')} | ${total('S3')} | ${counts.consumedCapacity.toFixed(1)} | ${detail} |`);
  }
}

/** Token requests, on a registry with logins on (cognito-local): anonymous pulls of a public repository. */
async function measureTokens(rows: Row[], counter: CallCounter, dataDir: string): Promise<void> {
  const registry = await startLocalRegistry({
    dataDir: join(dataDir, 'auth'),
    port: 0,
    quiet: true,
    auth: 'cognito',
    admin: { username: 'admin', password: 'Bench-Password-1' },
    callCounter: counter,
  });
  try {
    const setup = createAwsClients(registry.config, LOCAL_CREDENTIALS);
    await new AccessStore(setup.dynamo, registry.config.tableName).setPublic('public/*', true);
    setup.dynamo.destroy();
    setup.s3.destroy();
    const challenge = (await fetch(`${registry.url}/v2/public/app/tags/list`)).headers.get('www-authenticate') ?? '';
    const field = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(challenge)?.[1] ?? '';
    const tokenUrl = `${field('realm')}?service=${encodeURIComponent(field('service'))}&scope=${encodeURIComponent('repository:public/app:pull')}`;
    for (const flow of ['token request (anonymous pull), first on the instance', 'token request again, within 5 s']) {
      counter.take();
      const answer = await fetch(tokenUrl);
      if (answer.status !== 200) throw new Error(`token request: expected 200, got ${answer.status} ${await answer.text()}`);
      rows.push({ flow, counts: counter.take() });
    }
  } finally {
    await registry.stop();
  }
}

await main();
