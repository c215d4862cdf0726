/**
 * npm run doctor -- <registry-url> [--user U] [--repository R] [--expect-region R]
 *
 * Checks a registry (deployed, or the local deployed shape) for what issue 13's front door
 * promises and what only a real deployment can show (docs/front-door.md lists the assumptions):
 * one line per check, what failed and what that means for clients, exit 1 on any failure.
 * The password of --user comes from REGISTRY_PASSWORD or stdin; it is never printed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { HttpClient, type HttpResponse } from './push/http.js';
import { RegistryClient, type UploadSession } from './push/registry-client.js';

const USAGE = `usage: npm run doctor -- <registry-url> [--user <user>] [--repository <name>] [--expect-region <region>]
  <registry-url>            e.g. https://d111111abcdef8.cloudfront.net, or http://127.0.0.1:5000
  --user <user>             log in as this user; the password comes from REGISTRY_PASSWORD or stdin
  --repository <name>       where the check images go (default doctor/check-<random>)
  --expect-region <region>  the region that should serve pulls from here (replica routing)
Checks: login and token flow, small push and pull, an 8 MiB monolithic PUT through the direct
path, a lying PUT refused, an 8 MiB PATCH, the hosts every URL names, replica routing.`;

const MiB = 1024 * 1024;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

type Outcome = { result: 'pass' | 'skip'; detail: string } | { result: 'fail'; detail: string; meaning: string };

interface Check {
  name: string;
  run(): Promise<Outcome>;
}

const pass = (detail: string): Outcome => ({ result: 'pass', detail });
const skip = (detail: string): Outcome => ({ result: 'skip', detail });
const fail = (detail: string, meaning: string): Outcome => ({ result: 'fail', detail, meaning });

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Everything the checks learn as they go: later checks build on earlier ones. */
interface Findings {
  /** Hosts named by the URLs the registry handed out, by what handed them out. */
  hosts: { what: string; host: string }[];
  /** A blob of 8 MiB the registry holds, once the direct PUT worked. */
  bigBlob?: { digest: string; bytes: Buffer };
  /** Set when the registry did not answer at all: the other checks are not run. */
  unreachable?: boolean;
}

async function runDoctor(options: {
  url: string;
  user?: string;
  password?: string;
  repository?: string;
  expectRegion?: string;
  print: (line: string) => void;
}): Promise<boolean> {
  const base = new URL(options.url);
  const registryHost = base.host;
  const name = options.repository ?? `doctor/check-${randomBytes(4).toString('hex')}`;
  const http = new HttpClient(8);
  const client = new RegistryClient({
    registry: registryHost,
    name,
    insecureHttp: base.protocol === 'http:',
    credentials: options.user ? { username: options.user, password: options.password ?? '' } : undefined,
    mountFrom: [],
    http,
    retry: { attempts: 2, baseDelayMs: 200, maxDelayMs: 1000 },
  });
  const findings: Findings = { hosts: [] };
  const noteHost = (what: string, location: string | undefined) => {
    if (location) findings.hosts.push({ what, host: new URL(location, base).host });
  };

  async function openSession(): Promise<UploadSession> {
    const session = await client.openSession();
    noteHost('upload Location', session.location.href);
    return session;
  }

  async function putWhole(session: UploadSession, digest: string, body: Buffer): Promise<HttpResponse> {
    const url = new URL(session.location);
    url.searchParams.set('digest', digest);
    return client.request('PUT', url, { headers: { 'Content-Type': 'application/octet-stream' }, body });
  }

  const checks: Check[] = [
    {
      name: 'login and token flow',
      async run() {
        const probe = await fetch(new URL('/v2/', base)).catch((error: unknown) => error as Error);
        if (probe instanceof Error) {
          findings.unreachable = true;
          return fail(
            `no answer from ${base.origin} (${String(probe.cause ?? probe.message)})`,
            'the registry cannot be reached at this URL: nothing else can be checked',
          );
        }
        const challenge = probe.headers.get('www-authenticate') ?? '';
        const realm = /realm="([^"]+)"/.exec(challenge)?.[1];
        const service = /service="([^"]+)"/.exec(challenge)?.[1];
        noteHost('token realm', realm);
        const mode = await client.login();
        if (mode === 'open') return pass('open registry: GET /v2/ answers 200 without credentials (anyone who reaches it can push)');
        if (service && service !== registryHost) {
          return fail(
            `the token service is "${service}", not ${registryHost}`,
            'tokens name another audience: docker login may work, but pushes will be refused',
          );
        }
        return pass(`${mode} login as ${options.user ?? '(anonymous)'}; GET /v2/ answers 200 with the token`);
      },
    },
    {
      name: 'small push and pull',
      async run() {
        const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', doctor: randomBytes(8).toString('hex') }));
        const layer = randomBytes(32 * 1024);
        for (const blob of [config, layer]) {
          const response = await putWhole(await openSession(), sha256(blob), blob);
          noteHost('blob Location', header(response, 'location'));
          if (response.status !== 201)
            return fail(`blob PUT answered ${response.status} ${summary(response)}`, 'even small pushes fail: nothing can be pushed');
        }
        const manifest = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: OCI_MANIFEST,
            config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
            layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
          }),
        );
        const put = await client.request('PUT', `/v2/${name}/manifests/small`, { headers: { 'Content-Type': OCI_MANIFEST }, body: manifest });
        if (put.status !== 201)
          return fail(`manifest PUT answered ${put.status} ${summary(put)}`, 'blobs upload but images cannot be tagged: pushes end in an error');
        const got = await client.request('GET', `/v2/${name}/manifests/small`, { headers: { Accept: OCI_MANIFEST } });
        if (got.status !== 200 || !got.body.equals(manifest))
          return fail(`manifest GET answered ${got.status}`, 'pushed images cannot be pulled back');
        const pulled = await pullBlob(sha256(layer));
        if (!pulled.ok) return fail(pulled.detail, 'manifests pull, but layers do not: pulls fail');
        return pass(`pushed and pulled ${name}:small (config, 32 KiB layer, manifest)`);
      },
    },
    {
      name: '8 MiB monolithic PUT (direct path)',
      async run() {
        const session = await openSession();
        if (session.location.host !== registryHost) {
          return fail(
            `the upload Location is on ${session.location.host}`,
            'uploads leave the registry host: not the front door shape (an upload gateway alone?)',
          );
        }
        if (!session.location.searchParams.has('ticket')) {
          return fail(
            'the upload Location carries no ticket',
            'the registry is not behind the front door: a monolithic PUT (containerd, BuildKit, Docker 29+, oras, helm) goes through API Gateway and fails past about 4.4 MiB',
          );
        }
        const bytes = randomBytes(8 * MiB);
        const digest = sha256(bytes);
        const response = await putWhole(session, digest, bytes);
        noteHost('blob Location', header(response, 'location'));
        if (response.status !== 201) {
          return fail(
            `PUT answered ${response.status} ${summary(response)}`,
            'the front door did not send the body to S3: monolithic pushes of layers over about 4.4 MiB fail',
          );
        }
        if (header(response, 'docker-content-digest') !== digest) {
          return fail(`201 without Docker-Content-Digest ${digest}`, 'containerd and BuildKit refuse an answer without the digest they sent');
        }
        const head = await client.request('HEAD', `/v2/${name}/blobs/${digest}`);
        if (head.status !== 200)
          return fail(
            `the blob is not in the repository afterwards (HEAD ${head.status})`,
            'the direct upload was stored but not recorded: the manifest PUT will fail',
          );
        findings.bigBlob = { digest, bytes };
        return pass('201 with Location and Docker-Content-Digest; the blob is in the repository');
      },
    },
    {
      name: 'lying PUT refused',
      async run() {
        const claimed = sha256(randomBytes(64));
        const response = await putWhole(await openSession(), claimed, randomBytes(1 * MiB));
        const code = errorCode(response);
        if (response.status !== 400 || code !== 'DIGEST_INVALID') {
          return fail(
            `PUT of other bytes answered ${response.status} ${summary(response)}`,
            'a body that is not the digest it claims is not refused as DIGEST_INVALID: stored content cannot be trusted',
          );
        }
        const head = await client.request('HEAD', `/v2/${name}/blobs/${claimed}`);
        if (head.status !== 404)
          return fail(`HEAD of the claimed digest answered ${head.status}`, 'bytes were stored under a digest they do not hash to');
        return pass('400 DIGEST_INVALID, nothing stored under the claimed digest');
      },
    },
    {
      name: '8 MiB PATCH',
      async run() {
        const session = await openSession();
        const bytes = randomBytes(8 * MiB);
        const patched = await client.request('PATCH', session.location, { headers: { 'Content-Type': 'application/octet-stream' }, body: bytes });
        if (patched.status === 202) {
          const location = header(patched, 'location');
          noteHost('upload Location', location);
          const closed = await putWhole({ ...session, location: new URL(location ?? session.location.href, base) }, sha256(bytes), Buffer.alloc(0));
          if (closed.status !== 201)
            return fail(
              `the closing PUT answered ${closed.status} ${summary(closed)}`,
              'PATCH uploads do not complete: docker (classic store), podman, skopeo cannot push',
            );
          return pass('accepted (the upload gateway, or a registry without the API limit): PATCH clients push large layers');
        }
        const code = errorCode(patched);
        if (code === 'SIZE_INVALID' || code === 'BLOB_UPLOAD_INVALID') {
          return pass(
            `refused with ${code} naming the limit: docker (classic store), podman and skopeo see why layers over about 4.4 MiB fail (enable the upload gateway)`,
          );
        }
        return fail(
          `PATCH answered ${patched.status} ${summary(patched)}`,
          'clients get a bare error with no reason: the origin-response translation is missing',
        );
      },
    },
    {
      name: 'hosts of the URLs handed out',
      async run() {
        const others = findings.hosts.filter((entry) => entry.host !== registryHost);
        if (others.length > 0) {
          return fail(
            others.map((entry) => `${entry.what} on ${entry.host}`).join(', '),
            `clients are sent to another host than ${registryHost}: a second name that needs its own certificate and bypasses the front door`,
          );
        }
        const kinds = [...new Set(findings.hosts.map((entry) => entry.what))].join(', ');
        if (!findings.bigBlob) return pass(`${kinds} name ${registryHost}; no blob redirect followed (the direct PUT failed)`);
        const pulled = await pullBlob(findings.bigBlob.digest);
        if (!pulled.ok) return fail(pulled.detail, 'blob downloads fail');
        return pass(`${kinds} name ${registryHost}; blob GET ${pulled.redirectHost ? `redirects to ${pulled.redirectHost}` : 'answers directly'}`);
      },
    },
    {
      name: 'replica routing',
      async run() {
        if (!options.expectRegion) return skip('give --expect-region <region> to check which region serves pulls from here');
        if (!findings.bigBlob) return skip('no blob to pull (the direct PUT failed)');
        const pulled = await pullBlob(findings.bigBlob.digest);
        if (!pulled.ok) return fail(pulled.detail, 'blob downloads fail');
        if (!pulled.redirectHost?.includes(options.expectRegion)) {
          return fail(`blob GET redirects to ${pulled.redirectHost ?? 'nowhere'}`, `pulls from here are not served by ${options.expectRegion}`);
        }
        return pass(`pulls from here are served from ${pulled.redirectHost}`);
      },
    },
  ];

  /** GET of a blob, following a redirect without Authorization as clients do; checks the bytes. */
  async function pullBlob(digest: string): Promise<{ ok: true; redirectHost?: string } | { ok: false; detail: string }> {
    const response = await client.request('GET', `/v2/${name}/blobs/${digest}`);
    if (response.status === 200) return sha256(response.body) === digest ? { ok: true } : { ok: false, detail: 'blob GET answered other bytes' };
    const location = header(response, 'location');
    if (response.status !== 307 || !location) return { ok: false, detail: `blob GET answered ${response.status} ${summary(response)}` };
    const redirected = await fetch(location);
    if (!redirected.ok) return { ok: false, detail: `the redirect to ${new URL(location).host} answered ${redirected.status}` };
    const bytes = Buffer.from(await redirected.arrayBuffer());
    if (sha256(bytes) !== digest) return { ok: false, detail: `the redirect to ${new URL(location).host} answered other bytes` };
    return { ok: true, redirectHost: new URL(location).host };
  }

  let healthy = true;
  for (const check of checks) {
    let outcome: Outcome;
    if (findings.unreachable) {
      options.print(`SKIP  ${check.name}: the registry did not answer`);
      continue;
    }
    try {
      outcome = await check.run();
    } catch (error) {
      outcome = fail(error instanceof Error ? error.message : String(error), 'the check could not run to its end');
    }
    if (outcome.result === 'fail') healthy = false;
    const label = { pass: 'PASS', skip: 'SKIP', fail: 'FAIL' }[outcome.result];
    options.print(`${label}  ${check.name}: ${outcome.detail}${outcome.result === 'fail' ? ` — ${outcome.meaning}` : ''}`);
  }
  return healthy;
}

function header(response: HttpResponse, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function errorCode(response: HttpResponse): string | undefined {
  try {
    return (JSON.parse(response.body.toString('utf8')) as { errors?: { code?: string }[] }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}

/** The error code and message of an answer, or the start of its body. */
function summary(response: HttpResponse): string {
  try {
    const body = JSON.parse(response.body.toString('utf8')) as { errors?: { code?: string; message?: string }[]; message?: string };
    const error = body.errors?.[0];
    if (error) return `${error.code}: ${error.message}`;
    if (body.message) return `{"message":"${body.message}"} (a bare API Gateway answer)`;
  } catch {
    // not JSON
  }
  return response.body.toString('utf8').slice(0, 200);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      user: { type: 'string', short: 'u' },
      repository: { type: 'string' },
      'expect-region': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 1 || !/^https?:\/\//.test(positionals[0]!)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  let password: string | undefined;
  if (values.user) {
    password = process.env.REGISTRY_PASSWORD ?? (process.stdin.isTTY ? undefined : (await readStdin()).replace(/\r?\n$/, ''));
    if (!password) {
      process.stderr.write('--user needs the password in REGISTRY_PASSWORD or on stdin\n');
      return 2;
    }
  }
  const healthy = await runDoctor({
    url: positionals[0]!,
    user: values.user,
    password,
    repository: values.repository,
    expectRegion: values['expect-region'],
    print: (line) => process.stdout.write(`${line}\n`),
  });
  return healthy ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  },
);
