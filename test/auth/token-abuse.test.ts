/**
 * Token abuse with raw HTTP against the local registry with authentication on: every way of
 * using a token beyond what it grants is refused, with the status and challenge a client needs.
 */
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalRegistry, type LocalRegistry } from '../../scripts/local/local-registry.js';
import { TokenSigner } from '../../registry/services/auth/registry-tokens.js';
import { generateSigningKeyPem, signingKeyFromPem } from '../../registry/services/auth/signing-keys.js';
import { RegistryHttp, errorCode, imageManifest } from '../support/registry-http.js';
import { adminCli } from './admin-cli.js';

const ADMIN = { username: 'admin', password: 'Admin-Password-1' };
const ALICE = { username: 'alice', password: 'Alice-Password-1' };
/** Short enough to watch a token expire. */
const TOKEN_SECONDS = 2;

let workDir: string;
let registry: LocalRegistry;
let robotSecret: string;

async function token(credentials: { username: string; password: string } | undefined, ...scopes: string[]): Promise<Response> {
  const query = new URLSearchParams({ service: new URL(registry.url).host, offline_token: 'true' });
  for (const scope of scopes) query.append('scope', scope);
  const headers: Record<string, string> = {};
  if (credentials) headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
  return fetch(`${registry.url}/token?${query}`, { headers });
}

async function bearer(credentials: { username: string; password: string } | undefined, ...scopes: string[]): Promise<string> {
  const response = await token(credentials, ...scopes);
  expect(response.status).toBe(200);
  return ((await response.json()) as { token: string }).token;
}

function as(tokenValue: string): RegistryHttp {
  return new RegistryHttp(registry.url, { authorization: `Bearer ${tokenValue}` });
}

function challengeOf(response: Response): string {
  return response.headers.get('www-authenticate') ?? '';
}

beforeAll(async () => {
  workDir = join(tmpdir(), `abuse-${randomUUID().slice(0, 8)}`);
  await mkdir(workDir, { recursive: true });
  const dataDir = join(workDir, 'data');
  registry = await startLocalRegistry({ dataDir, port: 0, quiet: true, auth: 'cognito', admin: ADMIN, accessTokenSeconds: TOKEN_SECONDS });
  await adminCli(dataDir, ['group', 'create', 'team-a']);
  await adminCli(dataDir, ['user', 'create', ALICE.username, '--password', ALICE.password, '--group', 'team-a']);
  await adminCli(dataDir, ['grant', 'team-a', 'team-a/*', 'pull,push']);
  robotSecret = (
    JSON.parse(await adminCli(dataDir, ['robot', 'create', 'ci', '--grant', 'builds/*:pull,push', '--expires', '7', '--json'])) as {
      secret: string;
    }
  ).secret;
  // Tokens here live TOKEN_SECONDS, less than a loaded machine may take for two pushes: one each.
  for (const [repository, seed] of [
    ['team-a/app', 'a'],
    ['team-b/app', 'b'],
  ] as const) {
    await as(await bearer(ADMIN, `repository:${repository}:pull,push`)).pushImage(repository, 'v1', seed);
  }
}, 180_000);

afterAll(async () => {
  await registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('the challenge', () => {
  it('sends a request without a token to the token endpoint with the scope it needs', async () => {
    const response = await fetch(`${registry.url}/v2/team-a/app/blobs/uploads/`, { method: 'POST' });
    expect(response.status).toBe(401);
    expect(await errorCode(response)).toBe('UNAUTHORIZED');
    const host = new URL(registry.url).host;
    expect(challengeOf(response)).toBe(`Bearer realm="${registry.url}/token",service="${host}",scope="repository:team-a/app:pull,push"`);
  });

  it('refuses a wrong password at the token endpoint', async () => {
    const response = await token({ username: ALICE.username, password: 'wrong' }, 'repository:team-a/app:pull');
    expect(response.status).toBe(401);
    expect(await errorCode(response)).toBe('UNAUTHORIZED');
  });
});

describe('tokens used beyond their grant', () => {
  it('refuses a token for repository A on repository B', async () => {
    const forApp = as(await bearer(ALICE, 'repository:team-a/app:pull'));
    const sibling = await forApp.fetch('/v2/team-a/other/tags/list');
    expect(sibling.status).toBe(401);
    expect(challengeOf(sibling)).toContain('scope="repository:team-a/other:pull"');
    expect(challengeOf(sibling)).toContain('error="insufficient_scope"');
    const foreign = await forApp.fetch('/v2/team-b/app/manifests/v1');
    expect(foreign.status).toBe(403);
    expect(await errorCode(foreign)).toBe('DENIED');
  });

  it('says in DENIED who may not do what to which repository, and the same whether the repository exists', async () => {
    const alice = as(await bearer(ALICE, 'repository:team-a/app:pull'));
    const message = async (response: Response) => {
      expect(response.status).toBe(403);
      return ((await response.json()) as { errors: { code: string; message: string }[] }).errors[0]!;
    };
    const existing = await message(await alice.fetch('/v2/team-b/app/manifests/v1'));
    expect(existing).toEqual({
      code: 'DENIED',
      message: "user alice may not pull team-b/app; an admin grants it to a group of alice's: npm run admin -- grant <group> 'team-b/app' pull",
      detail: [{ Type: 'repository', Name: 'team-b/app', Action: 'pull' }],
    });
    const missing = await message(await alice.fetch('/v2/team-b/nothing/manifests/v1'));
    expect(JSON.stringify(missing)).toBe(JSON.stringify(existing).replaceAll('team-b/app', 'team-b/nothing'));

    const robot = as(await bearer({ username: 'robot$ci', password: robotSecret }, 'repository:team-a/app:pull,push'));
    const robotRefusal = await message(await robot.fetch('/v2/team-a/app/blobs/uploads/', { method: 'POST' }));
    expect(robotRefusal.message).toBe(
      "robot ci may not push team-a/app; a robot keeps the grants it was created with: an admin creates one with --grant 'team-a/app:push'",
    );
  });

  it('refuses a pull-only token for a push', async () => {
    const pullOnly = as(await bearer(ALICE, 'repository:team-a/app:pull'));
    expect((await pullOnly.fetch('/v2/team-a/app/manifests/v1')).status).toBe(200);
    const upload = await pullOnly.fetch('/v2/team-a/app/blobs/uploads/', { method: 'POST' });
    expect(upload.status).toBe(401);
    const manifest = await pullOnly.putManifest('team-a/app', 'v2', imageManifest(`sha256:${'a'.repeat(64)}`, `sha256:${'b'.repeat(64)}`));
    expect(manifest.status).toBe(401);
    // Tags set with ?tag= on a push by digest are a push like any other.
    const existing = await pullOnly.fetch('/v2/team-a/app/manifests/v1');
    const digest = existing.headers.get('docker-content-digest')!;
    const tagged = await pullOnly.putManifest('team-a/app', `${digest}?tag=v3&tag=latest`, await existing.text());
    expect(tagged.status).toBe(401);
    expect(await (await pullOnly.fetch('/v2/team-a/app/tags/list')).json()).toEqual({ name: 'team-a/app', tags: ['v1'] });
  });

  it('gives the same refusal whether or not the repository exists', async () => {
    const alice = as(await bearer(ALICE, 'repository:team-b/app:pull', 'repository:team-b/nothing:pull'));
    const existing = await alice.fetch('/v2/team-b/app/tags/list');
    const missing = await alice.fetch('/v2/team-b/nothing/tags/list');
    expect([existing.status, missing.status]).toEqual([403, 403]);
    const strip = (body: string) => body.replaceAll('team-b/app', 'X').replaceAll('team-b/nothing', 'X');
    expect(strip(await existing.text())).toBe(strip(await missing.text()));
  });
});

describe('tokens that are not valid', () => {
  it('refuses an expired token', async () => {
    const soonExpired = await bearer(ALICE, 'repository:team-a/app:pull');
    await new Promise((resolve) => setTimeout(resolve, (TOKEN_SECONDS + 1) * 1000));
    const response = await as(soonExpired).fetch('/v2/team-a/app/manifests/v1');
    expect(response.status).toBe(401);
    expect(challengeOf(response)).toContain('error="invalid_token"');
  });

  it('refuses a tampered token, one from another issuer or key, and alg none', async () => {
    const real = await bearer(ALICE, 'repository:team-a/app:pull');
    const [header, payload, signature] = real.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const widened = Buffer.from(JSON.stringify({ ...claims, access: [{ type: 'repository', name: 'team-b/app', actions: ['pull'] }] })).toString(
      'base64url',
    );
    const tampered = `${header}.${widened}.${signature}`;
    const ownKey = new TokenSigner(signingKeyFromPem(generateSigningKeyPem()), String(claims.iss));
    const otherKey = ownKey.sign('access', String(claims.aud), 300, {
      sub: 'alice',
      access: [{ type: 'repository', name: 'team-b/app', actions: ['pull'] }],
      grants: [],
    }).token;
    const otherIssuer = new TokenSigner(signingKeyFromPem(generateSigningKeyPem()), 'https://issuer.example/token').sign(
      'access',
      String(claims.aud),
      300,
      {
        sub: 'alice',
        access: [{ type: 'repository', name: 'team-b/app', actions: ['pull'] }],
        grants: [],
      },
    ).token;
    const unsigned = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${widened}.`;
    for (const forged of [tampered, otherKey, otherIssuer, unsigned]) {
      const response = await as(forged).fetch('/v2/team-b/app/manifests/v1');
      expect(response.status).toBe(401);
      expect(await errorCode(response)).toBe('UNAUTHORIZED');
    }
  });
});

describe('robots', () => {
  it('works where granted, is denied elsewhere, and is refused new tokens once revoked', async () => {
    const robot = { username: 'robot$ci', password: robotSecret };
    const login = await token(robot, 'repository:builds/app:pull,push');
    expect(login.status).toBe(200);
    const { token: access, refresh_token: refresh } = (await login.json()) as { token: string; refresh_token: string };
    await as(access).pushImage('builds/app', 'v1', 'robot');
    const elsewhere = as(await bearer(robot, 'repository:team-a/app:push'));
    expect((await elsewhere.fetch('/v2/team-a/app/blobs/uploads/', { method: 'POST' })).status).toBe(403);

    await adminCli(join(workDir, 'data'), ['robot', 'revoke', 'ci']);
    expect((await token(robot, 'repository:builds/app:pull')).status).toBe(401);
    const refreshed = await fetch(`${registry.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: refresh,
        service: new URL(registry.url).host,
        scope: 'repository:builds/app:pull',
      }),
    });
    expect(refreshed.status).toBe(401);
  });
});

/** A token request from another source address than the tests' usual 127.0.0.1. */
function tokenFrom(localAddress: string, credentials: { username: string; password: string }): Promise<{ status: number; retryAfter?: string }> {
  const url = new URL(`${registry.url}/token?service=${new URL(registry.url).host}`);
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      url,
      { localAddress, headers: { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` } },
      (response) => {
        response.resume();
        response.on('end', () => resolve({ status: response.statusCode ?? 0, retryAfter: response.headers['retry-after'] }));
      },
    );
    request.on('error', reject);
    request.end();
  });
}

async function refresh(refreshToken: string): Promise<number> {
  const response = await fetch(`${registry.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      service: new URL(registry.url).host,
      scope: 'repository:team-a/app:pull',
    }),
  });
  await response.arrayBuffer();
  return response.status;
}

async function refreshTokenOf(credentials: { username: string; password: string }): Promise<string> {
  const response = await token(credentials, 'repository:team-a/app:pull');
  expect(response.status).toBe(200);
  return ((await response.json()) as { refresh_token: string }).refresh_token;
}

describe('logins that must not break the token endpoint (issue 9)', () => {
  it('refuses an empty robot name and over-long robot and user names with 401, not 500', async () => {
    for (const username of ['robot$', `robot$${'r'.repeat(1500)}`, 'u'.repeat(2048)]) {
      const response = await token({ username, password: 'x' }, 'repository:team-a/app:pull');
      expect(response.status, username.slice(0, 10)).toBe(401);
      expect(await errorCode(response)).toBe('UNAUTHORIZED');
    }
  });

  it('voids stored logins on set-password, disable, group removal and sign-out', async () => {
    const dataDir = join(workDir, 'data');
    const dora = { username: 'dora', password: 'Dora-Password-1' };
    await adminCli(dataDir, ['user', 'create', dora.username, '--password', dora.password, '--group', 'team-a']);
    // Each change to dora voids the refresh token she had before it; a fresh login works again.
    const changes: { command: string[]; undo?: string[]; password?: string }[] = [
      { command: ['user', 'set-password', 'dora', '--password', 'Dora-Password-2'], password: 'Dora-Password-2' },
      { command: ['user', 'sign-out', 'dora'] },
      { command: ['group', 'remove-user', 'team-a', 'dora'] },
      { command: ['user', 'disable', 'dora'], undo: ['user', 'enable', 'dora'] },
    ];
    let password = dora.password;
    for (const change of changes) {
      const stored = await refreshTokenOf({ username: 'dora', password });
      expect(await refresh(stored)).toBe(200);
      await adminCli(dataDir, change.command);
      if (change.undo) await adminCli(dataDir, change.undo);
      password = change.password ?? password;
      expect(await refresh(stored), change.command.join(' ')).toBe(401);
    }
    expect(await refresh(await refreshTokenOf({ username: 'dora', password }))).toBe(200);
  }, 120_000);

  it('answers 429 with Retry-After after repeated wrong passwords from one address, and still lets the user in from another', async () => {
    const dataDir = join(workDir, 'data');
    const erin = { username: 'erin', password: 'Erin-Password-1' };
    await adminCli(dataDir, ['user', 'create', erin.username, '--password', erin.password]);
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 8; attempt++) statuses.push((await tokenFrom('127.0.0.1', { ...erin, password: 'wrong' })).status);
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(statuses.slice(5)).toEqual([429, 429, 429]);
    const locked = await tokenFrom('127.0.0.1', erin);
    expect(locked.status).toBe(429);
    expect(Number(locked.retryAfter)).toBeGreaterThanOrEqual(1);
    expect((await tokenFrom('127.0.0.2', erin)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, Number(locked.retryAfter) * 1000 + 200));
    expect((await tokenFrom('127.0.0.1', erin)).status).toBe(200);
  }, 60_000);
});
