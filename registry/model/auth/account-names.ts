/**
 * What a login name may be, checked by the token endpoint before any lookup (an empty or
 * oversized DynamoDB key is a fault, not a wrong password) and by the admin CLI before it
 * creates anything.
 */

/** Usernames starting with this name robot accounts: `robot$ci-builds`. */
export const ROBOT_PREFIX = 'robot$';

/**
 * Usernames starting with this name OIDC workload trusts (docs/logins.md): `trust$ci-app`, with
 * the job's ID token as the password.
 */
export const TRUST_PREFIX = 'trust$';

/** Robot and trust names: short, lowercase, safe in a key and in a URL. */
const ROBOT_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/**
 * Any username a Cognito user pool can hold (its API's `Username` pattern and length). The
 * admin CLI creates only a stricter subset; the token endpoint accepts all the pool may have.
 */
const POOL_USERNAME = /^[\p{L}\p{M}\p{S}\p{N}\p{P}]{1,128}$/u;

export function isValidRobotName(name: string): boolean {
  return ROBOT_NAME.test(name);
}

export function isValidPoolUsername(name: string): boolean {
  return POOL_USERNAME.test(name);
}

/** The robot's name for a `robot$<name>` username; undefined for a team login. */
export function robotNameOf(username: string): string | undefined {
  return username.startsWith(ROBOT_PREFIX) ? username.slice(ROBOT_PREFIX.length) : undefined;
}

/** Trust names follow the robot name rule. */
export const isValidTrustName = isValidRobotName;

/** The trust's name for a `trust$<name>` username; undefined for any other login. */
export function trustNameOf(username: string): string | undefined {
  return username.startsWith(TRUST_PREFIX) ? username.slice(TRUST_PREFIX.length) : undefined;
}
