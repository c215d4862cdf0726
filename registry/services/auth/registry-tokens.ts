import { randomUUID, sign } from 'node:crypto';
import { JwtVerifier } from 'aws-jwt-verify';
import type { JwtPayload } from 'aws-jwt-verify/jwt-model';
import type { Grant } from '../../model/auth/access-model.js';
import type { ResourceScope } from '../../model/auth/scopes.js';
import type { SigningKey, VerificationKey } from './signing-keys.js';

/** The subject of tokens issued without credentials. */
export const ANONYMOUS_SUBJECT = 'anonymous';

/** `access` tokens authorize registry requests; `refresh` tokens only get new access tokens. */
export type TokenUse = 'access' | 'refresh';

export interface AccessClaims {
  sub: string;
  access: ResourceScope[];
  /** Everything the caller may do at issue time: `_catalog` lists what these let it pull. */
  grants: Grant[];
  /** Refresh tokens: the account's session generation at issue; a later one voids the token. */
  gen: number;
}

export interface VerifiedToken {
  subject: string;
  use: TokenUse;
  access: ResourceScope[];
  grants: Grant[];
  expiresAt: number;
  /** The session generation a refresh token was issued in (0 when it names none). */
  generation: number;
}

/** The longest a token of each use may live, as configured; a longer-lived one is refused. */
export type TokenLifetimes = Record<TokenUse, number>;

/** Tolerated clock difference between the token endpoint and a verifier, for `iat`. */
const CLOCK_SKEW_SECONDS = 60;

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** Signs registry tokens: compact JWS, ES256, with the claims Docker's token spec uses. */
export class TokenSigner {
  constructor(
    private readonly key: SigningKey,
    private readonly issuer: string,
  ) {}

  sign(use: TokenUse, audience: string, ttlSeconds: number, claims: Partial<AccessClaims> & { sub: string }): { token: string; issuedAt: Date } {
    const now = Math.floor(Date.now() / 1000);
    const header = base64url({ alg: 'ES256', typ: 'JWT', kid: this.key.kid });
    const payload = base64url({
      iss: this.issuer,
      aud: audience,
      iat: now,
      nbf: now,
      exp: now + ttlSeconds,
      jti: randomUUID(),
      token_use: use,
      ...claims,
    });
    const signature = sign('sha256', Buffer.from(`${header}.${payload}`), { key: this.key.privateKey, dsaEncoding: 'ieee-p1363' });
    return { token: `${header}.${payload}.${signature.toString('base64url')}`, issuedAt: new Date(now * 1000) };
  }
}

/**
 * Verifies registry tokens with aws-jwt-verify: signature against our own key (loaded, not
 * fetched), issuer, audience, expiry and token use. Built once per process; the verifier
 * caches the parsed key.
 */
export class TokenVerifier {
  private readonly verifiers: Record<TokenUse, { verify(token: string): Promise<JwtPayload> }>;

  constructor(keys: VerificationKey[], issuer: string, audience: string, lifetimes: TokenLifetimes) {
    const create = (use: TokenUse) => {
      const verifier = JwtVerifier.create({
        issuer,
        audience,
        // Never fetched: the keys are cached below. aws-jwt-verify requires a URI all the same.
        jwksUri: 'https://registry.invalid/token/jwks.json',
        customJwtCheck: ({ payload }) => {
          if (payload.token_use !== use) throw new Error(`not a registry ${use} token`);
          checkLifetime(payload, lifetimes[use]);
        },
      });
      verifier.cacheJwks({ keys: keys.map((key) => key.jwk) });
      return verifier;
    };
    this.verifiers = { access: create('access'), refresh: create('refresh') };
  }

  /** Answers undefined for any token that is not a valid, current registry token of that use. */
  async verify(token: string, use: TokenUse): Promise<VerifiedToken | undefined> {
    try {
      const payload = await this.verifiers[use].verify(token);
      return {
        subject: String(payload.sub),
        use,
        access: Array.isArray(payload.access) ? (payload.access as unknown as ResourceScope[]) : [],
        grants: Array.isArray(payload.grants) ? (payload.grants as unknown as Grant[]) : [],
        expiresAt: Number(payload.exp),
        generation: Number.isInteger(payload.gen) ? Number(payload.gen) : 0,
      };
    } catch {
      return undefined;
    }
  }
}

/**
 * A token must say when it was issued and when it expires, and may live no longer than
 * configured: a correctly signed token without `exp` would otherwise be valid for ever.
 */
function checkLifetime(payload: JwtPayload, maxSeconds: number): void {
  const { exp, iat } = payload;
  if (typeof exp !== 'number' || typeof iat !== 'number') throw new Error('a registry token needs exp and iat');
  if (iat > Date.now() / 1000 + CLOCK_SKEW_SECONDS) throw new Error('token issued in the future');
  if (exp - iat > maxSeconds) throw new Error('token lives longer than configured');
}
