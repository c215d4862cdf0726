/**
 * OIDC workload trusts (docs/logins.md, "CI without stored secrets"): a job whose ID token comes
 * from the trust's issuer, for its audience, with claims that meet every condition, logs in as
 * `trust$<name>` and gets the trust's grants for at most its lifetime. Pure rules; the store is
 * storage/trust-store.ts, the login services/auth/workload-identity.ts.
 */
import type { Action, Grant } from './access-model.js';

/** How long a registry token issued through a trust may live, unless the trust says less. */
export const DEFAULT_TRUST_LIFETIME_SECONDS = 900;
export const MIN_TRUST_LIFETIME_SECONDS = 60;
export const MAX_TRUST_LIFETIME_SECONDS = 3600;

/** A claim of the ID token must equal the value, or match it where the value holds `*`. */
export interface ClaimCondition {
  claim: string;
  value: string;
}

export interface WorkloadTrust {
  name: string;
  /** The ID token's `iss`, exactly; its OpenID configuration is at `<issuer>/.well-known/openid-configuration`. */
  issuer: string;
  /** The ID token's `aud` must contain it. */
  audience: string;
  /** All must hold; a trust has at least one. */
  claims: ClaimCondition[];
  /** What the job may do: pull, push, delete, never admin. */
  grants: Grant[];
  maxLifetimeSeconds: number;
  createdAt: number;
}

/** The actions a trust may grant: what a job needs, never the registry's admin. */
export const TRUST_ACTIONS: readonly Action[] = ['pull', 'push', 'delete'];

/**
 * A glob: `*` matches any run of characters (slashes and colons included), everything else
 * itself. No regular expression: backtracking only to the last star, at most pattern × value
 * steps, so a hostile claim cannot make it slow.
 */
export function globMatches(pattern: string, value: string): boolean {
  let p = 0;
  let v = 0;
  let star = -1;
  let resume = 0;
  while (v < value.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === value[v]) {
      p++;
      v++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      resume = v;
    } else if (star >= 0) {
      p = star + 1;
      v = ++resume;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

/** A claim's value as a condition compares it: strings, numbers and booleans; anything else never matches. */
function claimText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

/** The first condition the claims fail, or undefined when all hold (none failing with no conditions never happens: a trust has one). */
export function failedCondition(conditions: readonly ClaimCondition[], claims: Record<string, unknown>): ClaimCondition | undefined {
  return conditions.find(({ claim, value }) => {
    const actual = Object.hasOwn(claims, claim) ? claimText(claims[claim]) : undefined;
    return actual === undefined || !globMatches(value, actual);
  });
}

/** The trust's grants as a token may carry them: admin never, whatever the stored item says. */
export function trustGrants(trust: Pick<WorkloadTrust, 'grants'>): Grant[] {
  return trust.grants
    .map(({ pattern, actions }) => ({ pattern, actions: actions.filter((action) => TRUST_ACTIONS.includes(action)) }))
    .filter((grant) => grant.actions.length > 0);
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/**
 * Why an issuer, or a URL its OpenID configuration names, may not be used; undefined when it may.
 * HTTPS only, without credentials, query or fragment; plain HTTP to a loopback address only where
 * the local registry allows it (never in AWS).
 */
export function issuerUrlProblem(value: string, allowLoopbackHttp: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a URL';
  }
  if (url.username || url.password || url.search || url.hash) return 'must not carry credentials, a query or a fragment';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname)) {
    return allowLoopbackHttp ? undefined : 'must use https (plain http to a loopback address is for the local registry only)';
  }
  return 'must use https';
}

/** Where OpenID Connect discovery finds the issuer's configuration. */
export function openIdConfigurationUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
}
