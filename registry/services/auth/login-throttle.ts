import { RegistryError } from '../../model/oci/errors.js';
import type { FailureCount, LoginState, LoginStateStore } from '../../storage/login-state-store.js';

/**
 * How failed logins slow further attempts (docs/logins.md). Two counters per attempt: the name
 * from this source address, and the source address whatever the name. Each lets a few failures
 * pass, then locks for a time that doubles with every further failure, up to a ceiling.
 *
 * A name's counter is kept per source on purpose: failures an attacker causes elsewhere never
 * lock the user out of their own machine. Attempts refused while locked do not count, so a
 * lock ends on time however often it is hit.
 */
export interface LoginThrottlePolicy {
  /** Failures of one name from one source before the first lock. */
  userFreeFailures: number;
  /** Failures from one source, any names, before the first lock. */
  sourceFreeFailures: number;
  /** The first lock; each further failure doubles it. */
  firstLockSeconds: number;
  maxLockSeconds: number;
  /** A counter without a new failure for this long is forgotten (DynamoDB TTL). */
  forgetSeconds: number;
}

export const LOGIN_THROTTLE: LoginThrottlePolicy = {
  userFreeFailures: 5,
  sourceFreeFailures: 20,
  firstLockSeconds: 1,
  maxLockSeconds: 15 * 60,
  forgetSeconds: 60 * 60,
};

/** Whole seconds until the counter lets a login through again; 0 when it does now. */
export function lockedForSeconds(count: FailureCount | undefined, freeFailures: number, policy: LoginThrottlePolicy, now: number): number {
  if (!count || count.failures < freeFailures) return 0;
  const lockSeconds = Math.min(policy.firstLockSeconds * 2 ** (count.failures - freeFailures), policy.maxLockSeconds);
  const remainingMs = count.lastFailureAt + lockSeconds * 1000 - now;
  return remainingMs > 0 ? Math.ceil(remainingMs / 1000) : 0;
}

export class LoginThrottle {
  constructor(
    private readonly store: LoginStateStore,
    private readonly policy: LoginThrottlePolicy = LOGIN_THROTTLE,
  ) {}

  /** The login state, read before the password is checked; 429 while either counter is locked. */
  async admit(username: string, source: string): Promise<LoginState> {
    const state = await this.store.read(username, source);
    const now = Date.now();
    const wait = Math.max(
      lockedForSeconds(state.user, this.policy.userFreeFailures, this.policy, now),
      lockedForSeconds(state.source, this.policy.sourceFreeFailures, this.policy, now),
    );
    if (wait > 0) {
      throw new RegistryError('TOOMANYREQUESTS', `too many failed logins: try again in ${wait} s`, { retryAfterSeconds: wait });
    }
    return state;
  }

  async failed(username: string, source: string): Promise<void> {
    const now = Date.now();
    await this.store.recordFailure(username, source, now, Math.floor(now / 1000) + this.policy.forgetSeconds);
  }

  /** Forgets the name's failures from this source; a write only when there were any. */
  async succeeded(username: string, source: string, state: LoginState): Promise<void> {
    if (state.user) await this.store.clearUserFailures(username, source);
  }
}
