/**
 * Verifying the ID tokens of OIDC issuers (GitHub Actions, GitLab CI, ...) with aws-jwt-verify:
 * the issuer's `jwks_uri` comes from its OpenID configuration, its keys from there; both are
 * cached per warm instance, the keys fetched again for an unknown `kid` (at most once per
 * UNKNOWN_KID_WAIT_SECONDS per issuer). Fetches go through one fetcher that refuses anything but
 * https (plain http to loopback only where the local registry allows it), redirects, slow answers
 * and big bodies.
 */
import { JwtVerifier } from 'aws-jwt-verify';
import {
  FetchError,
  JwtExpiredError,
  JwtInvalidAudienceError,
  JwtInvalidIssuerError,
  JwtInvalidSignatureAlgorithmError,
  JwtInvalidSignatureError,
  JwtNotBeforeError,
  JwksValidationError,
  JwkValidationError,
  JwtParseError,
  JwtWithoutValidKidError,
  KidNotFoundInJwksError,
  WaitPeriodNotYetEndedJwkError,
} from 'aws-jwt-verify/error';
import type { Fetcher } from 'aws-jwt-verify/https';
import { SimpleJwksCache, SimplePenaltyBox } from 'aws-jwt-verify/jwk';
import type { JwtPayload } from 'aws-jwt-verify/jwt-model';
import { issuerUrlProblem, openIdConfigurationUrl } from '../../model/auth/workload-trust.js';

/**
 * Asymmetric algorithms only, the ones CI issuers use (GitHub, GitLab, Buildkite, CircleCI and
 * Kubernetes sign with RS256; some issuers with ES256, RS384/RS512 or ES384). Never `none` nor
 * HS*, whose "key" would be the issuer's public key; aws-jwt-verify implements no others anyway.
 */
export const ALLOWED_ALGORITHMS: readonly string[] = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384'];

/** Tolerated clock difference with the issuer for `nbf` and `iat` (`exp` is never stretched: a registry token must end by it). */
export const CLOCK_SKEW_SECONDS = 60;
/** How long a warm instance keeps an issuer's configuration and keys before reading them again. */
export const ISSUER_CACHE_MS = 60 * 60 * 1000;
/** After a failed discovery, the issuer is not asked again for this long. */
const DISCOVERY_RETRY_MS = 10_000;
/** After an unknown `kid` was not in freshly fetched keys either, the keys are not fetched again for this long. */
export const UNKNOWN_KID_WAIT_SECONDS = 10;
const FETCH_TIMEOUT_MS = 3_000;
const MAX_DOCUMENT_BYTES = 256 * 1024;

/** Which check an ID token failed: for the log and the audit log, never for the caller. */
export type IdTokenRefusal =
  | 'malformed-token'
  | 'algorithm-not-allowed'
  | 'wrong-issuer'
  | 'issuer-not-https'
  | 'issuer-unreachable'
  | 'unknown-key'
  | 'bad-signature'
  | 'wrong-audience'
  | 'expired'
  | 'not-yet-valid'
  | 'issued-in-future'
  | 'missing-exp-or-iat';

export class IdTokenRefused extends Error {
  constructor(readonly reason: IdTokenRefusal) {
    super(reason);
  }
}

export interface OidcIssuersOptions {
  /** Only the local registry sets this (AuthConfig.allowLoopbackHttpIssuers); never the Lambda environment. */
  allowLoopbackHttp: boolean;
  now?: () => number;
}

type Verifier = { verify(token: string): Promise<JwtPayload> };

/** What a warm instance keeps of one issuer: its discovered key URI, its keys, a verifier per audience. */
interface Issuer {
  jwksUri: Promise<string>;
  jwksCache: SimpleJwksCache;
  verifiers: Map<string, Verifier>;
  until: number;
}

export class OidcIssuers {
  private readonly issuers = new Map<string, Issuer>();
  private readonly fetcher: Fetcher;
  private readonly now: () => number;

  constructor(private readonly options: OidcIssuersOptions) {
    this.now = options.now ?? Date.now;
    this.fetcher = { fetch: (uri) => this.fetch(uri) };
  }

  /**
   * The verified payload of an ID token from this issuer for this audience, or IdTokenRefused
   * naming the check that failed. The header and issuer are checked before anything is fetched.
   */
  async verify(token: string, issuer: string, audience: string): Promise<JwtPayload> {
    const { alg, iss } = unverifiedHeaderAndIssuer(token);
    if (!ALLOWED_ALGORITHMS.includes(alg)) throw new IdTokenRefused('algorithm-not-allowed');
    if (iss !== issuer) throw new IdTokenRefused('wrong-issuer');
    if (issuerUrlProblem(issuer, this.options.allowLoopbackHttp)) throw new IdTokenRefused('issuer-not-https');
    let payload: JwtPayload;
    try {
      payload = await (await this.verifierFor(issuer, audience)).verify(token);
    } catch (error) {
      throw error instanceof IdTokenRefused ? error : new IdTokenRefused(refusalOf(error));
    }
    const now = this.now() / 1000;
    if (typeof payload.exp !== 'number' || typeof payload.iat !== 'number') throw new IdTokenRefused('missing-exp-or-iat');
    if (payload.exp <= now) throw new IdTokenRefused('expired');
    if (payload.iat > now + CLOCK_SKEW_SECONDS) throw new IdTokenRefused('issued-in-future');
    return payload;
  }

  private issuer(issuer: string): Issuer {
    const cached = this.issuers.get(issuer);
    if (cached && this.now() < cached.until) return cached;
    const entry: Issuer = {
      jwksUri: this.discover(issuer),
      jwksCache: new SimpleJwksCache({ fetcher: this.fetcher, penaltyBox: new SimplePenaltyBox({ waitSeconds: UNKNOWN_KID_WAIT_SECONDS }) }),
      verifiers: new Map(),
      until: this.now() + ISSUER_CACHE_MS,
    };
    entry.jwksUri.catch(() => {
      entry.until = Math.min(entry.until, this.now() + DISCOVERY_RETRY_MS);
    });
    this.issuers.set(issuer, entry);
    return entry;
  }

  /** The issuer's verifier for one audience; the issuer's verifiers share its keys. */
  private async verifierFor(issuer: string, audience: string): Promise<Verifier> {
    const entry = this.issuer(issuer);
    const jwksUri = await entry.jwksUri;
    let verifier = entry.verifiers.get(audience);
    if (!verifier) {
      verifier = JwtVerifier.create({ issuer, audience, jwksUri, graceSeconds: CLOCK_SKEW_SECONDS }, { jwksCache: entry.jwksCache });
      entry.verifiers.set(audience, verifier);
    }
    return verifier;
  }

  /** OpenID Connect discovery: the configuration must name the same issuer, and an acceptable `jwks_uri`. */
  private async discover(issuer: string): Promise<string> {
    const document = JSON.parse(Buffer.from(await this.fetch(openIdConfigurationUrl(issuer))).toString('utf8')) as Record<string, unknown>;
    const jwksUri = document.jwks_uri;
    if (document.issuer !== issuer || typeof jwksUri !== 'string') throw new IdTokenRefused('issuer-unreachable');
    if (issuerUrlProblem(jwksUri, this.options.allowLoopbackHttp)) throw new IdTokenRefused('issuer-not-https');
    return jwksUri;
  }

  private async fetch(uri: string): Promise<ArrayBuffer> {
    if (issuerUrlProblem(uri, this.options.allowLoopbackHttp)) throw new IdTokenRefused('issuer-not-https');
    let response: Response;
    try {
      response = await fetch(uri, { redirect: 'error', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), headers: { accept: 'application/json' } });
    } catch (error) {
      throw new FetchError(uri, (error as Error).name);
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new FetchError(uri, `status ${response.status}`);
    }
    const body = await readLimited(response, MAX_DOCUMENT_BYTES);
    if (!body) throw new FetchError(uri, 'document too large');
    return body;
  }
}

async function readLimited(response: Response, limit: number): Promise<ArrayBuffer | undefined> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += chunk.byteLength;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  const joined = Buffer.concat(chunks);
  return joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength) as ArrayBuffer;
}

/** A compact JWS's header `alg` and payload `iss`, unverified: only to refuse early and to pick the issuer. */
function unverifiedHeaderAndIssuer(token: string): { alg: string; iss: unknown } {
  const parts = token.split('.');
  if (parts.length !== 3) throw new IdTokenRefused('malformed-token');
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')) as { alg?: unknown };
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as { iss?: unknown };
    return { alg: String(header.alg), iss: payload.iss };
  } catch {
    throw new IdTokenRefused('malformed-token');
  }
}

function refusalOf(error: unknown): IdTokenRefusal {
  if (error instanceof JwtExpiredError) return 'expired';
  if (error instanceof JwtNotBeforeError) return 'not-yet-valid';
  if (error instanceof JwtInvalidAudienceError) return 'wrong-audience';
  if (error instanceof JwtInvalidIssuerError) return 'wrong-issuer';
  if (error instanceof JwtInvalidSignatureAlgorithmError) return 'algorithm-not-allowed';
  if (error instanceof JwtInvalidSignatureError) return 'bad-signature';
  if (error instanceof KidNotFoundInJwksError || error instanceof WaitPeriodNotYetEndedJwkError || error instanceof JwtWithoutValidKidError) {
    return 'unknown-key';
  }
  if (error instanceof FetchError || error instanceof SyntaxError || error instanceof JwksValidationError || error instanceof JwkValidationError) {
    return 'issuer-unreachable';
  }
  if (error instanceof JwtParseError) return 'malformed-token';
  return 'bad-signature';
}
