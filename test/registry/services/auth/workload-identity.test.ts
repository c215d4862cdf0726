/**
 * OIDC workload logins at the token endpoint, against a real (loopback) OIDC provider: what a job's
 * ID token gets, and every forgery and mismatch refused exactly like a wrong password, with the
 * failed check in the log and never the token.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTokenEndpoint } from '../../../../registry/api/token-endpoint.js';
import { authConfigFromEnv } from '../../../../registry/config/config.js';
import type { RegistryRequest } from '../../../../registry/model/http.js';
import type { WorkloadTrust } from '../../../../registry/model/auth/workload-trust.js';
import type { CognitoIdentities } from '../../../../registry/services/auth/cognito-identities.js';
import { OidcIssuers, UNKNOWN_KID_WAIT_SECONDS } from '../../../../registry/services/auth/oidc-issuers.js';
import { TokenSigner, TokenVerifier } from '../../../../registry/services/auth/registry-tokens.js';
import { generateSigningKeyPem, signingKeyFromPem } from '../../../../registry/services/auth/signing-keys.js';
import { TokenService } from '../../../../registry/services/auth/token-service.js';
import { WorkloadLogins } from '../../../../registry/services/auth/workload-identity.js';
import type { AccessStore } from '../../../../registry/storage/access-store.js';
import type { RobotStore } from '../../../../registry/storage/robot-store.js';
import type { TrustStore } from '../../../../registry/storage/trust-store.js';
import { jsonLogger } from '../../../../registry/support/logger.js';
import { startOidcProvider, type OidcProvider } from '../../../support/oidc-provider.js';
import { MemoryLoginState } from './memory-login-state.js';

const REALM = 'https://registry.example/token';
const SERVICE = 'registry.example';
const AUDIENCE = 'registry.example';
const GITHUB_CLAIMS = { sub: 'repo:org/app:ref:refs/heads/main', repository: 'org/app', ref: 'refs/heads/main' };

let provider: OidcProvider;
let stranger: OidcProvider;
const trusts = new Map<string, WorkloadTrust>();
const lines: string[] = [];
const key = signingKeyFromPem(generateSigningKeyPem());
const verifier = new TokenVerifier([key], REALM, SERVICE, { access: 300, refresh: 3600 });

function endpointWith(issuers: OidcIssuers) {
  const tokens = new TokenService(
    new TokenSigner(key, REALM),
    verifier,
    { authenticate: async () => undefined } as unknown as CognitoIdentities,
    { get: async () => undefined } as unknown as RobotStore,
    { readCached: async () => ({ groupGrants: [], publicPatterns: [] }) } as unknown as AccessStore,
    new MemoryLoginState().asStore(),
    { service: SERVICE, adminGroup: 'registry-admins', accessTokenSeconds: 300, refreshTokenSeconds: 3600 },
    new WorkloadLogins(
      { find: async (name: string) => trusts.get(name) } as unknown as TrustStore,
      issuers,
      jsonLogger((line) => lines.push(line)),
    ),
  );
  return createTokenEndpoint(
    tokens,
    jsonLogger((line) => lines.push(line)),
  );
}

let endpoint: ReturnType<typeof endpointWith>;

const get = (username: string, password: string, query = 'scope=repository:ci/app/web:pull,push&offline_token=true'): RegistryRequest => ({
  method: 'GET',
  path: '/token',
  query: new URLSearchParams(query),
  headers: { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` },
});

async function login(idToken: string, username = 'trust$ci-app') {
  const response = await endpoint(get(username, idToken));
  return { status: response.status, body: JSON.parse(String(response.body)) as Record<string, unknown> };
}

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

/** The reason the last refusal was logged with. */
function lastRefusal(): unknown {
  const refusals = lines.map((line) => JSON.parse(line)).filter((entry) => entry.message === 'workload login refused');
  return refusals.at(-1)?.reason;
}

beforeAll(async () => {
  [provider, stranger] = await Promise.all([startOidcProvider(), startOidcProvider()]);
});
afterAll(async () => {
  await Promise.all([provider?.stop(), stranger?.stop()]);
});
beforeEach(() => {
  trusts.clear();
  trusts.set('ci-app', {
    name: 'ci-app',
    issuer: provider.issuer,
    audience: AUDIENCE,
    claims: [
      { claim: 'repository', value: 'org/app' },
      { claim: 'ref', value: 'refs/heads/*' },
    ],
    // `admin` in a stored item is never honoured.
    grants: [
      { pattern: 'ci/app/*', actions: ['pull', 'push', 'admin'] },
      { pattern: 'base/*', actions: ['pull'] },
    ],
    maxLifetimeSeconds: 900,
    createdAt: Date.now(),
  });
  endpoint = endpointWith(new OidcIssuers({ allowLoopbackHttp: true }));
});

describe('a trusted job', () => {
  it.each(['RS256', 'ES256'] as const)('logs in with a %s ID token and gets what the trust grants, without a refresh token', async (alg) => {
    const idToken = provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS }, { alg });
    const { status, body } = await login(idToken);
    expect(status).toBe(200);
    expect(body.refresh_token).toBeUndefined();
    expect(body.scope).toBe('repository:ci/app/web:pull,push');
    const registryToken = await verifier.verify(String(body.token), 'access');
    expect(registryToken).toMatchObject({ subject: 'trust$ci-app', access: [{ type: 'repository', name: 'ci/app/web', actions: ['pull', 'push'] }] });
    expect(registryToken?.grants).toEqual([
      { pattern: 'ci/app/*', actions: ['pull', 'push'] },
      { pattern: 'base/*', actions: ['pull'] },
    ]);
  });

  it('logs in through the OAuth2 form too (grant_type=password, as docker login posts it)', async () => {
    const idToken = provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS });
    const form = new URLSearchParams({
      grant_type: 'password',
      username: 'trust$ci-app',
      password: idToken,
      scope: 'repository:ci/app/web:*',
      access_type: 'offline',
    });
    const response = await endpoint({
      method: 'POST',
      path: '/token',
      query: new URLSearchParams(),
      headers: {},
      body: [Buffer.from(form.toString())],
    });
    const body = JSON.parse(String(response.body)) as Record<string, unknown>;
    expect(response.status).toBe(200);
    expect(body.refresh_token).toBeUndefined();
    // `*` asks for everything: the trust's pull and push, never delete or admin.
    expect(body.scope).toBe('repository:ci/app/web:pull,push');
  });

  it('gets nothing outside its grants, and only pull where it may only pull', async () => {
    const idToken = provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS });
    const elsewhere = await endpoint(
      get('trust$ci-app', idToken, 'scope=repository:team-b/app:pull,push&scope=repository:base/alpine:pull,push,delete'),
    );
    expect(JSON.parse(String(elsewhere.body)).scope).toBe('repository:base/alpine:pull');
  });

  it("gets a registry token that ends when the ID token does, or with the trust's lifetime", async () => {
    const now = Math.floor(Date.now() / 1000);
    const shortLived = await login(provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS, exp: now + 90 }));
    expect(shortLived.body.expires_in).toBeLessThanOrEqual(90);
    expect(shortLived.body.expires_in).toBeGreaterThan(80);
    expect(claimsOf(String(shortLived.body.token)).exp).toBeLessThanOrEqual(now + 90);

    trusts.get('ci-app')!.maxLifetimeSeconds = 120;
    const capped = await login(provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS, exp: now + 3600 }));
    expect(capped.body.expires_in).toBeLessThanOrEqual(120);
    // Never longer than the registry's own token lifetime.
    trusts.get('ci-app')!.maxLifetimeSeconds = 3600;
    expect((await login(provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS, exp: now + 3600 }))).body.expires_in).toBe(300);
  });

  it('is accepted after the issuer rotates its key: the keys are fetched again for the new kid', async () => {
    expect((await login(provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS }))).status).toBe(200);
    const fetches = provider.requests.filter((path) => path === '/.well-known/jwks').length;
    provider.rotate('RS256');
    expect((await login(provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS }))).status).toBe(200);
    expect(provider.requests.filter((path) => path === '/.well-known/jwks').length).toBe(fetches + 1);
  });
});

describe('refused exactly like a wrong password, with the failed check in the log', () => {
  const now = () => Math.floor(Date.now() / 1000);
  const cases: [string, () => string, string][] = [
    ['a token from another issuer', () => stranger.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS }), 'wrong-issuer'],
    ['another issuer claiming to be ours', () => stranger.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS, iss: provider.issuer }), 'unknown-key'],
    ['the wrong audience', () => provider.mint({ aud: 'someone-else', ...GITHUB_CLAIMS }), 'wrong-audience'],
    ['a failed claim condition', () => provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS, repository: 'org/other' }), 'claim-mismatch'],
    ['a claim the glob does not match', () => provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS, ref: 'refs/tags/v1' }), 'claim-mismatch'],
    ['a missing claim', () => provider.mint({ aud: AUDIENCE, sub: 'x', ref: 'refs/heads/main' }), 'claim-mismatch'],
    ['an expired token', () => provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS, iat: now() - 600, nbf: now() - 600, exp: now() - 5 }), 'expired'],
    ['nbf in the future', () => provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS, nbf: now() + 300, exp: now() + 600 }), 'not-yet-valid'],
    ['iat in the future', () => provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS, iat: now() + 300, exp: now() + 600 }), 'issued-in-future'],
    ['no exp', () => provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS, exp: undefined }), 'missing-exp-or-iat'],
    ['alg: none', () => provider.unsigned({ aud: AUDIENCE, ...GITHUB_CLAIMS }), 'algorithm-not-allowed'],
    ['HS256 signed with the public key as secret', () => provider.hs256WithPublicKey({ aud: AUDIENCE, ...GITHUB_CLAIMS }), 'algorithm-not-allowed'],
    ['a tampered payload', () => tamper(provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS, repository: 'org/other' })), 'bad-signature'],
    ['garbage', () => 'not.a.jwt', 'malformed-token'],
  ];

  it.each(cases)('%s', async (_name, token, reason) => {
    const wrongPassword = await login('wrong password', 'alice');
    const idToken = token();
    const refused = await login(idToken);
    expect(refused).toEqual(wrongPassword);
    expect(refused.status).toBe(401);
    expect(lastRefusal()).toBe(reason);
    expect(lines.join('\n')).not.toContain(idToken.split('.')[2] || idToken);
  });

  it('an issuer that cannot be reached', async () => {
    const dead = 'http://127.0.0.1:9';
    trusts.set('dead', { ...trusts.get('ci-app')!, name: 'dead', issuer: dead });
    expect((await login(provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS, iss: dead }), 'trust$dead')).status).toBe(401);
    expect(lastRefusal()).toBe('issuer-unreachable');
  });

  it('an unknown trust, or a trust name no trust can have', async () => {
    const idToken = provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS });
    expect((await login(idToken, 'trust$nobody')).status).toBe(401);
    expect(lastRefusal()).toBe('unknown-trust');
    expect((await login(idToken, 'trust$NOT VALID')).status).toBe(401);
  });

  it('an unknown kid: after one fetch of fresh keys, and no further fetch while the wait lasts', async () => {
    expect((await login(provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS }))).status).toBe(200);
    const jwksFetches = () => provider.requests.filter((path) => path === '/.well-known/jwks').length;
    const before = jwksFetches();
    expect((await login(provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS }, { unpublished: true }))).status).toBe(401);
    expect(lastRefusal()).toBe('unknown-key');
    expect(jwksFetches()).toBe(before + 1);
    // Published now, but within the wait the registry does not ask again.
    provider.publishPending();
    expect((await login(provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS }, { unpublished: true }))).status).toBe(401);
    expect(jwksFetches()).toBe(before + 1);
    expect(UNKNOWN_KID_WAIT_SECONDS).toBeLessThanOrEqual(10);
  });

  it('a plain-http issuer where the local registry did not allow it, without asking the issuer anything', async () => {
    endpoint = endpointWith(new OidcIssuers({ allowLoopbackHttp: false }));
    const asked = provider.requests.length;
    expect((await login(provider.mint({ aud: AUDIENCE, ...GITHUB_CLAIMS }))).status).toBe(401);
    expect(lastRefusal()).toBe('issuer-not-https');
    expect(provider.requests.length).toBe(asked);
  });

  it('the deployed environment never allows plain-http issuers, whatever it holds', () => {
    const env = {
      REGISTRY_AUTH: 'token',
      PUBLIC_BASE_URL: 'https://r.example',
      ALLOW_LOOPBACK_HTTP_ISSUERS: 'true',
      allowLoopbackHttpIssuers: 'true',
    };
    expect(authConfigFromEnv(env).allowLoopbackHttpIssuers).toBeUndefined();
  });
});

function tamper(token: string): string {
  const [header, payload, signature] = token.split('.');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  return [header, Buffer.from(JSON.stringify({ ...claims, repository: 'org/app' })).toString('base64url'), signature].join('.');
}
