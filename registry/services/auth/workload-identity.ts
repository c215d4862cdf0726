/**
 * Logins of CI jobs with their OIDC ID token (docs/logins.md, "CI without stored secrets"): the
 * username `trust$<name>` names a trust, the password is the ID token. The token must be signed by
 * the trust's issuer, for its audience, current, and meet every claim condition; then the job gets
 * the trust's grants (never admin), until the ID token expires or the trust's lifetime ends,
 * whichever is first. A refusal is an ordinary wrong credential to the caller; the log says which
 * check failed (the reason code, for the audit log too) and never carries the token.
 */
import type { Grant } from '../../model/auth/access-model.js';
import { TRUST_PREFIX } from '../../model/auth/account-names.js';
import { failedCondition, trustGrants } from '../../model/auth/workload-trust.js';
import type { TrustStore } from '../../storage/trust-store.js';
import type { Logger } from '../../support/logger.js';
import { IdTokenRefused, type IdTokenRefusal, type OidcIssuers } from './oidc-issuers.js';

/** An ID token is a few KB at most; anything bigger is refused unread. */
const MAX_ID_TOKEN_LENGTH = 16 * 1024;

/** Why a workload login was refused: the ID token's failed check, or one about the trust. */
export type WorkloadLoginRefusal = IdTokenRefusal | 'unknown-trust' | 'claim-mismatch';

export interface WorkloadAccount {
  subject: string;
  grants: Grant[];
  /** Epoch seconds: the registry token may live no longer. */
  validUntil: number;
}

export type WorkloadLogin = { account: WorkloadAccount } | { refused: WorkloadLoginRefusal; claim?: string };

export class WorkloadLogins {
  constructor(
    private readonly trusts: TrustStore,
    private readonly issuers: OidcIssuers,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** The account a job's ID token logs in as, or why not (logged; the audit record names the reason). */
  async logIn(trustName: string, idToken: string): Promise<WorkloadLogin> {
    const login = await this.check(trustName, idToken);
    if ('account' in login) {
      this.logger.info('workload login', { trust: trustName, validUntil: login.account.validUntil });
    } else {
      this.logger.warn('workload login refused', { trust: trustName, reason: login.refused, ...(login.claim ? { claim: login.claim } : {}) });
    }
    return login;
  }

  async check(trustName: string, idToken: string): Promise<WorkloadLogin> {
    const trust = await this.trusts.find(trustName);
    if (!trust) return { refused: 'unknown-trust' };
    if (idToken.length > MAX_ID_TOKEN_LENGTH) return { refused: 'malformed-token' };
    let claims: Record<string, unknown>;
    try {
      claims = await this.issuers.verify(idToken, trust.issuer, trust.audience);
    } catch (error) {
      if (error instanceof IdTokenRefused) return { refused: error.reason };
      throw error;
    }
    const failed = failedCondition(trust.claims, claims);
    // A trust without conditions would admit every job of the issuer: never, whatever the item says.
    if (failed || trust.claims.length === 0) return { refused: 'claim-mismatch', claim: failed?.claim };
    const nowSeconds = Math.floor(this.now() / 1000);
    const validUntil = Math.min(Math.floor(Number(claims.exp)), nowSeconds + trust.maxLifetimeSeconds);
    return { account: { subject: `${TRUST_PREFIX}${trust.name}`, grants: trustGrants(trust), validUntil } };
  }
}
