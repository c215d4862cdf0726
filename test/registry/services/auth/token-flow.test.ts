import { generateKeyPairSync, sign } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { TokenAuthorizer } from '../../../../registry/services/auth/authorizer.js';
import type { CognitoIdentities, UserIdentity } from '../../../../registry/services/auth/cognito-identities.js';
import { TokenSigner, TokenVerifier } from '../../../../registry/services/auth/registry-tokens.js';
import { hashRobotSecret } from '../../../../registry/services/auth/robot-secrets.js';
import { generateSigningKeyPem, signingKeyFromPem } from '../../../../registry/services/auth/signing-keys.js';
import { TokenService } from '../../../../registry/services/auth/token-service.js';
import type { AccessRequirement } from '../../../../registry/services/auth/authorizer.js';
import type { RegistryRequest } from '../../../../registry/model/http.js';
import { headersOf } from '../../../../registry/api/error-response.js';
import { RegistryError } from '../../../../registry/model/oci/errors.js';
import type { AccessPolicy, AccessStore } from '../../../../registry/storage/access-store.js';
import type { RobotStore, StoredRobot } from '../../../../registry/storage/robot-store.js';
import { MemoryLoginState } from './memory-login-state.js';

/**
 * The token flow end to end in memory: what the token endpoint grants and what a registry
 * request then may do with it, including the abuse cases a registry must refuse.
 */
const ISSUER = 'https://registry.example/token';
const SERVICE = 'registry.example';
const key = signingKeyFromPem(generateSigningKeyPem());
const signer = new TokenSigner(key, ISSUER);
const LIFETIMES = { access: 300, refresh: 3600 };
const verifier = new TokenVerifier([key], ISSUER, SERVICE, LIFETIMES);
const authorizer = new TokenAuthorizer(verifier, ISSUER, SERVICE);

const users = new Map<string, { password: string; identity: UserIdentity; enabled: boolean }>();
const robots = new Map<string, StoredRobot>();
let policy: AccessPolicy;

/** Every name the user directory or the robot store was asked about. */
const lookups: string[] = [];

const userDirectory = {
  authenticate: async (username: string, password: string) => {
    lookups.push(username);
    const user = users.get(username);
    return user?.enabled && user.password === password ? user.identity : undefined;
  },
  current: async (username: string) => {
    const user = users.get(username);
    return user?.enabled ? user.identity : undefined;
  },
} as unknown as CognitoIdentities;
const robotStore = {
  get: async (name: string) => {
    lookups.push(`robot ${name}`);
    return robots.get(name);
  },
} as unknown as RobotStore;
const accessStore = { readCached: async () => policy } as unknown as AccessStore;
const logins = new MemoryLoginState();

const service = new TokenService(signer, verifier, userDirectory, robotStore, accessStore, logins.asStore(), {
  service: SERVICE,
  adminGroup: 'registry-admins',
  accessTokenSeconds: 300,
  refreshTokenSeconds: 3600,
});

beforeEach(async () => {
  logins.failures.clear();
  logins.generations.clear();
  lookups.length = 0;
  users.clear();
  robots.clear();
  policy = {
    groupGrants: [
      { group: 'team-a', pattern: 'team-a/*', actions: ['pull', 'push'] },
      { group: 'readers', pattern: 'team-b/app', actions: ['pull'] },
    ],
    publicPatterns: ['public/*'],
  };
  users.set('alice', { password: 'alice-pw', identity: { username: 'alice', groups: ['team-a'] }, enabled: true });
  users.set('root', { password: 'root-pw', identity: { username: 'root', groups: ['registry-admins'] }, enabled: true });
  robots.set('ci', {
    name: 'ci',
    grants: [{ pattern: 'team-a/app', actions: ['pull', 'push'] }],
    validUntil: Math.floor(Date.now() / 1000) + 3600,
    revoked: false,
    createdAt: Date.now(),
    secretHash: await hashRobotSecret('robot-secret'),
  });
});

function scope(name: string, actions: string): { type: string; name: string; actions: string[] } {
  return { type: 'repository', name, actions: actions.split(',') };
}

async function tokenFor(username: string | undefined, password: string, scopes: ReturnType<typeof scope>[]): Promise<string> {
  const issued = await service.issue({ scopes, offline: false, credentials: username ? { username, password } : undefined });
  return issued.token;
}

function request(token?: string): RegistryRequest {
  return { method: 'GET', path: '/v2/', query: new URLSearchParams(), headers: token ? { authorization: `Bearer ${token}` } : {} };
}

async function outcome(token: string | undefined, requirement: AccessRequirement): Promise<number | 'allowed'> {
  try {
    await authorizer.authorize(request(token), requirement);
    return 'allowed';
  } catch (error) {
    if (error instanceof RegistryError) return error.status;
    throw error;
  }
}

const push = (name: string): AccessRequirement => ({ kind: 'repository', name, action: 'push' });
const pull = (name: string): AccessRequirement => ({ kind: 'repository', name, action: 'pull' });

describe('the token endpoint', () => {
  it('grants the intersection of what was asked and what the caller may do', async () => {
    const issued = await service.issue({
      scopes: [scope('team-a/app', 'pull,push,delete'), scope('team-b/app', 'pull,push'), scope('team-c/x', 'pull')],
      offline: false,
      credentials: { username: 'alice', password: 'alice-pw' },
    });
    expect(issued.scope).toBe('repository:team-a/app:pull,push');
    expect(issued.expiresIn).toBeGreaterThanOrEqual(60);
  });

  it('refuses a wrong password, an unknown user, a disabled user and a wrong robot secret', async () => {
    const attempts = [
      { username: 'alice', password: 'wrong' },
      { username: 'nobody', password: 'x' },
      { username: 'robot$ci', password: 'wrong' },
      { username: 'robot$ghost', password: 'robot-secret' },
    ];
    users.get('alice')!.enabled = true;
    for (const credentials of attempts) {
      await expect(service.issue({ scopes: [], offline: false, credentials })).rejects.toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
    }
    users.get('alice')!.enabled = false;
    await expect(service.issue({ scopes: [], offline: false, credentials: { username: 'alice', password: 'alice-pw' } })).rejects.toMatchObject({
      code: 'UNAUTHORIZED',
    });
  });

  it('gives anonymous callers pull on public namespaces only', async () => {
    const issued = await service.issue({ scopes: [scope('public/base', 'pull,push'), scope('team-a/app', 'pull')], offline: false });
    expect(issued.scope).toBe('repository:public/base:pull');
    expect(issued.refreshToken).toBeUndefined();
  });

  it('hands out a refresh token on offline login that keeps working while the user may log in', async () => {
    const login = await service.issue({ scopes: [], offline: true, credentials: { username: 'alice', password: 'alice-pw' } });
    expect(login.refreshToken).toBeDefined();
    const refreshed = await service.issue({ scopes: [scope('team-a/app', 'push')], offline: false, refreshToken: login.refreshToken });
    expect(refreshed.scope).toBe('repository:team-a/app:push');
    users.get('alice')!.enabled = false;
    await expect(service.issue({ scopes: [], offline: false, refreshToken: login.refreshToken })).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  });

  it('does not accept an access token as a refresh token', async () => {
    const access = await tokenFor('alice', 'alice-pw', []);
    await expect(service.issue({ scopes: [], offline: false, refreshToken: access })).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  });
});

describe('registry requests with tokens', () => {
  it('allows what the token holds', async () => {
    const token = await tokenFor('alice', 'alice-pw', [scope('team-a/app', 'pull,push')]);
    expect(await outcome(token, push('team-a/app'))).toBe('allowed');
    expect(await outcome(token, { kind: 'login' })).toBe('allowed');
  });

  it('refuses a token for repository A on repository B', async () => {
    const token = await tokenFor('alice', 'alice-pw', [scope('team-a/app', 'pull,push')]);
    // B is also alice's: she must come back for a token that names it (401), not be let in.
    expect(await outcome(token, pull('team-a/other'))).toBe(401);
    // C is not hers at all: 403.
    expect(await outcome(token, pull('team-b/secret'))).toBe(403);
  });

  it('refuses a pull-only token for a push', async () => {
    const token = await tokenFor('alice', 'alice-pw', [scope('team-a/app', 'pull')]);
    expect(await outcome(token, push('team-a/app'))).toBe(401);
    const reader = await tokenFor(undefined, '', [scope('public/base', 'pull')]);
    expect(await outcome(reader, push('public/base'))).toBe(401);
  });

  it('denies with 403 a logged-in caller who may not', async () => {
    users.set('bob', { password: 'bob-pw', identity: { username: 'bob', groups: ['readers'] }, enabled: true });
    const bob = await tokenFor('bob', 'bob-pw', [scope('team-b/app', 'pull,push')]);
    expect(await outcome(bob, pull('team-b/app'))).toBe('allowed');
    expect(await outcome(bob, push('team-b/app'))).toBe(403);
  });

  it('answers 401 with the challenge for missing, expired, tampered, foreign and alg:none tokens', async () => {
    const good = await tokenFor('alice', 'alice-pw', [scope('team-a/app', 'pull')]);
    const expired = signer.sign('access', SERVICE, -120, { sub: 'alice', access: [scope('team-a/app', 'pull')], grants: [] }).token;
    const [header, payload, signature] = good.split('.');
    const forged = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    forged.access = [scope('team-a/app', 'pull,push,delete')];
    const tampered = `${header}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${signature}`;
    const foreign = new TokenSigner(signingKeyFromPem(generateSigningKeyPem()), ISSUER).sign('access', SERVICE, 300, {
      sub: 'alice',
      access: [scope('team-a/app', 'pull')],
      grants: [],
    }).token;
    const otherIssuer = new TokenSigner(key, 'https://evil.example/token').sign('access', SERVICE, 300, {
      sub: 'alice',
      access: [scope('team-a/app', 'pull')],
      grants: [],
    }).token;
    const otherAudience = signer.sign('access', 'other.example', 300, { sub: 'alice', access: [scope('team-a/app', 'pull')], grants: [] }).token;
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload}.`;
    const refresh = signer.sign('refresh', SERVICE, 300, { sub: 'alice', access: [scope('team-a/app', 'pull')], grants: [] }).token;
    for (const token of [undefined, expired, tampered, foreign, otherIssuer, otherAudience, unsigned, refresh, 'not-a-jwt']) {
      try {
        await authorizer.authorize(request(token), pull('team-a/app'));
        expect.unreachable(`token ${token} was accepted`);
      } catch (error) {
        expect(error).toBeInstanceOf(RegistryError);
        const refused = error as RegistryError;
        expect(refused.status).toBe(401);
        expect(refused.code).toBe('UNAUTHORIZED');
        expect(headersOf(refused)['WWW-Authenticate']).toBe(
          `Bearer realm="${ISSUER}",service="${SERVICE}",scope="repository:team-a/app:pull"${token ? ',error="invalid_token"' : ''}`,
        );
      }
    }
  });

  it('an RS256 token signed with a key that is not ours is refused', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: key.kid })).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const body = Buffer.from(
      JSON.stringify({ iss: ISSUER, aud: SERVICE, sub: 'x', exp: now + 300, token_use: 'access', access: [scope('team-a/app', 'pull')] }),
    ).toString('base64url');
    const signature = sign('sha256', Buffer.from(`${header}.${body}`), privateKey).toString('base64url');
    expect(await outcome(`${header}.${body}.${signature}`, pull('team-a/app'))).toBe(401);
  });

  it('stops honouring a revoked robot for new tokens at once', async () => {
    const token = await tokenFor('robot$ci', 'robot-secret', [scope('team-a/app', 'push')]);
    expect(await outcome(token, push('team-a/app'))).toBe('allowed');
    expect(await outcome(await tokenFor('robot$ci', 'robot-secret', [scope('team-a/other', 'push')]), push('team-a/other'))).toBe(403);
    robots.get('ci')!.revoked = true;
    await expect(tokenFor('robot$ci', 'robot-secret', [])).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  });

  it('expires robots at their expiry', async () => {
    robots.get('ci')!.validUntil = Math.floor(Date.now() / 1000) - 1;
    await expect(tokenFor('robot$ci', 'robot-secret', [])).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  });

  it('lets the registry-wide admin group do everything, everywhere', async () => {
    const token = await tokenFor('root', 'root-pw', [scope('anything/at/all', 'pull,push,delete')]);
    expect(await outcome(token, { kind: 'repository', name: 'anything/at/all', action: 'delete' })).toBe('allowed');
  });
});

/** A correctly signed registry token with exactly these claims, whatever they are. */
function signedWith(claims: Record<string, unknown>): string {
  const header = Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid: key.kid })).toString('base64url');
  const body = Buffer.from(JSON.stringify({ iss: ISSUER, aud: SERVICE, token_use: 'access', sub: 'alice', ...claims })).toString('base64url');
  const signature = sign('sha256', Buffer.from(`${header}.${body}`), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${header}.${body}.${signature.toString('base64url')}`;
}

async function refusal(attempt: Promise<unknown>): Promise<RegistryError> {
  const error = await attempt.then(
    () => undefined,
    (failed: unknown) => failed,
  );
  if (!(error instanceof RegistryError)) throw new Error(`expected a refusal, got ${String(error)}`);
  return error;
}

const login = (username: string, password: string, source = '192.0.2.1') =>
  service.issue({ scopes: [scope('team-a/app', 'pull')], offline: true, credentials: { username, password }, source });

describe('login defects of issue 9', () => {
  it('refuses robot$ without a name, and over-long robot and user names, as wrong credentials, before any lookup', async () => {
    const long = 'a'.repeat(1025);
    for (const username of ['robot$', `robot$${long}`, 'robot$Upper', long, 'a'.repeat(129), 'with space', '']) {
      expect(await refusal(login(username, 'x'))).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
    }
    expect(lookups).toEqual([]);
  });

  it('voids refresh tokens when the user is signed out (as set-password, disable and group removal do), not new ones', async () => {
    const before = await login('alice', 'alice-pw');
    expect((await service.issue({ scopes: [], offline: false, refreshToken: before.refreshToken })).token).toBeTruthy();
    await logins.signOut('Alice');
    expect(await refusal(service.issue({ scopes: [], offline: false, refreshToken: before.refreshToken }))).toMatchObject({ status: 401 });
    const after = await login('alice', 'alice-pw');
    const refreshed = await service.issue({ scopes: [scope('team-a/app', 'push')], offline: false, refreshToken: after.refreshToken });
    expect(refreshed.scope).toBe('repository:team-a/app:push');
  });

  it('refuses correctly signed tokens without exp or iat, or living longer than configured', async () => {
    const now = Math.floor(Date.now() / 1000);
    const access = [scope('team-a/app', 'pull')];
    expect(await outcome(signedWith({ access, iat: now, exp: now + 300 }), pull('team-a/app'))).toBe('allowed');
    for (const claims of [{ iat: now }, { exp: now + 300 }, {}, { iat: now, exp: now + 301 }, { iat: now + 3600, exp: now + 3700 }]) {
      expect(await outcome(signedWith({ access, ...claims }), pull('team-a/app')), JSON.stringify(claims)).toBe(401);
    }
    const endless = signer.sign('refresh', SERVICE, 10 * 365 * 86400, { sub: 'alice' }).token;
    expect(await refusal(service.issue({ scopes: [], offline: false, refreshToken: endless }))).toMatchObject({ status: 401 });
  });

  it('answers 429 with Retry-After once a source has failed too often for a user, even to the right password, but not elsewhere', async () => {
    for (let attempt = 0; attempt < 5; attempt++) expect(await refusal(login('alice', 'wrong'))).toMatchObject({ status: 401 });
    const locked = await refusal(login('alice', 'alice-pw'));
    expect(locked).toMatchObject({ code: 'TOOMANYREQUESTS', status: 429 });
    expect(Number(headersOf(locked)['Retry-After'])).toBeGreaterThanOrEqual(1);
    // An attacker elsewhere cannot lock alice out of her own machine.
    expect((await login('alice', 'alice-pw', '198.51.100.7')).token).toBeTruthy();
    // Hammering the lock does not extend it: it ends on time, and the right password works.
    for (let attempt = 0; attempt < 10; attempt++) expect(await refusal(login('alice', 'wrong'))).toMatchObject({ status: 429 });
    await new Promise((resolve) => setTimeout(resolve, Number(headersOf(locked)['Retry-After']) * 1000 + 100));
    expect((await login('alice', 'alice-pw')).token).toBeTruthy();
  });

  it('locks a source that tries many names', async () => {
    for (let attempt = 0; attempt < 20; attempt++) expect(await refusal(login(`user-${attempt}`, 'x', '203.0.113.9'))).toMatchObject({ status: 401 });
    expect(await refusal(login('alice', 'alice-pw', '203.0.113.9'))).toMatchObject({ status: 429 });
    expect((await login('alice', 'alice-pw')).token).toBeTruthy();
  });
});
