/**
 * An upstream registry for the pull-through tests: Debian's docker-registry (distribution
 * 2.8) on loopback, started by reference-registry.ts, either open, behind htpasswd Basic
 * auth, or behind the Docker token flow with a small token server of its own (RS256 JWTs
 * whose `x5c` header carries a self-signed certificate the registry trusts). Images are
 * pushed to its own port with skopeo, so a counting proxy in front of it sees only what the
 * registry under test asks for.
 */
import { createSign, randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { createSkopeo, runTool, type Skopeo } from './clients.js';
import { startReferenceRegistry, type ReferenceAuth, type RunningRegistry } from './reference-registry.js';

export type UpstreamAuth = 'none' | 'basic' | 'token';

export interface UpstreamCredentials {
  username: string;
  password: string;
}

export interface UpstreamRegistry extends RunningRegistry {
  auth: UpstreamAuth;
  /** What a client must present (Basic on the registry, or on the token server); absent when open. */
  credentials?: UpstreamCredentials;
  /** The `scope` of every token request the token server answered, in order (token auth only). */
  tokenRequests: string[];
  /** Pushes `oci:<layoutDir>:<tag>` to `<repository>:<tag>` on the registry's own port (not through any proxy), digests as generated. */
  push(layoutDir: string, tag: string, repository: string): Promise<void>;
}

/** Seconds a token lives; the upstream client is expected to reuse it until shortly before. */
export const UPSTREAM_TOKEN_SECONDS = 60;
/** bcrypt's minimum cost: the registry checks it on every request, and the machine is shared. */
const BCRYPT_COST = 4;
const TOKEN_SERVICE = 'upstream-test';
const TOKEN_ISSUER = 'upstream-test-issuer';

export async function startUpstreamRegistry(options: {
  dataDir: string;
  auth?: UpstreamAuth;
  credentials?: UpstreamCredentials;
}): Promise<UpstreamRegistry> {
  const auth = options.auth ?? 'none';
  const credentials = auth === 'none' ? undefined : (options.credentials ?? { username: 'puller', password: `pw-${randomUUID()}` });
  const tokenRequests: string[] = [];
  await mkdir(options.dataDir, { recursive: true });
  let tokenServer: TokenServer | undefined;
  let referenceAuth: ReferenceAuth | undefined;
  if (auth === 'basic' && credentials) {
    const path = join(options.dataDir, 'htpasswd');
    await writeFile(path, `${credentials.username}:${bcrypt.hashSync(credentials.password, BCRYPT_COST)}\n`, { mode: 0o600 });
    referenceAuth = { htpasswd: { realm: 'upstream-test', path } };
  } else if (auth === 'token') {
    tokenServer = await startTokenServer(options.dataDir, credentials, tokenRequests);
    referenceAuth = {
      token: { realm: `${tokenServer.url}/token`, service: TOKEN_SERVICE, issuer: TOKEN_ISSUER, rootCertBundle: tokenServer.certPath },
    };
  }
  const registry = await startReferenceRegistry({ dataDir: options.dataDir, auth: referenceAuth });
  let skopeo: Skopeo | undefined;
  return {
    ...registry,
    auth,
    credentials,
    tokenRequests,
    push: async (layoutDir, tag, repository) => {
      skopeo ??= await createSkopeo(join(options.dataDir, 'skopeo'));
      // Without --preserve-digests skopeo would compress uncompressed layers on the way.
      const creds = ['--preserve-digests', ...(credentials ? ['--dest-creds', `${credentials.username}:${credentials.password}`] : [])];
      await skopeo.copy(`oci:${layoutDir}:${tag}`, `docker://127.0.0.1:${registry.port}/${repository}:${tag}`, creds);
    },
    stop: async () => {
      await registry.stop();
      await tokenServer?.stop();
    },
  };
}

interface TokenServer {
  url: string;
  certPath: string;
  stop(): Promise<void>;
}

/**
 * The Docker token flow's realm: `GET /token?service=&scope=` (Basic credentials when the
 * upstream has some) → `{token, access_token, expires_in, issued_at}`, granting the actions
 * asked for. The registry trusts the JWT through the `x5c` chain (one self-signed certificate).
 */
async function startTokenServer(dataDir: string, credentials: UpstreamCredentials | undefined, requests: string[]): Promise<TokenServer> {
  const keyPath = join(dataDir, 'token-key.pem');
  const certPath = join(dataDir, 'token-cert.pem');
  await runTool('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=upstream-test-token',
    '-days',
    '2',
    '-keyout',
    keyPath,
    '-out',
    certPath,
  ]);
  const [privateKey, certificate] = await Promise.all([readFile(keyPath, 'utf8'), readFile(certPath, 'utf8')]);
  const x5c = [certificate.replace(/-----(BEGIN|END) CERTIFICATE-----|\s+/g, '')];

  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://token');
    if (url.pathname !== '/token') return void response.writeHead(404).end();
    if (credentials && !presents(request, credentials)) {
      response.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"incorrect username or password"}');
      return;
    }
    const scopes = url.searchParams.getAll('scope');
    requests.push(scopes.join(' '));
    const issuedAt = new Date();
    const token = signJwt(privateKey, x5c, {
      iss: TOKEN_ISSUER,
      sub: credentials?.username ?? '',
      aud: url.searchParams.get('service') ?? TOKEN_SERVICE,
      exp: Math.floor(issuedAt.getTime() / 1000) + UPSTREAM_TOKEN_SECONDS,
      nbf: Math.floor(issuedAt.getTime() / 1000) - 5,
      iat: Math.floor(issuedAt.getTime() / 1000),
      jti: randomUUID(),
      access: scopes.flatMap(accessOfScope),
    });
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ token, access_token: token, expires_in: UPSTREAM_TOKEN_SECONDS, issued_at: issuedAt.toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, certPath, stop: () => closeServer(server) };
}

function presents(request: IncomingMessage, credentials: UpstreamCredentials): boolean {
  const expected = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
  return request.headers.authorization === expected;
}

/** `repository:library/app:pull,push` → the JWT `access` entry. */
function accessOfScope(scope: string): Array<{ type: string; name: string; actions: string[] }> {
  const parts = scope.split(':');
  if (parts.length < 3) return [];
  const actions = (parts.pop() ?? '').split(',').filter(Boolean);
  const [type = '', ...name] = parts;
  return [{ type, name: name.join(':'), actions }];
}

function signJwt(privateKey: string, x5c: string[], claims: Record<string, unknown>): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${encode({ alg: 'RS256', typ: 'JWT', x5c })}.${encode(claims)}`;
  const signature = createSign('RSA-SHA256').update(unsigned).sign(privateKey).toString('base64url');
  return `${unsigned}.${signature}`;
}

export function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
