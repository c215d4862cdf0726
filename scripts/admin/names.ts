/** What the CLI accepts as names, checked before anything is sent anywhere. */
import { ROBOT_PREFIX, isValidRobotName, robotNameOf } from '../../registry/model/auth/account-names.js';
import { UsageError } from './errors.js';

export { ROBOT_PREFIX };

/**
 * Cognito takes almost any printable username; docker sends it in HTTP Basic credentials, where
 * a colon would end it, and the token endpoint reads a `robot$` prefix as a robot account.
 */
const USERNAME = /^[\p{L}\p{N}][\p{L}\p{N}._@+-]{0,127}$/u;

/** Cognito's group name rule, less `#`, which separates the group from the pattern in grant keys. */
const GROUP_NAME = /^[\p{L}\p{M}\p{S}\p{N}\p{P}]{1,128}$/u;

export function checkUsername(name: string): string {
  if (name.startsWith(ROBOT_PREFIX)) throw new UsageError(`"${name}": names starting with ${ROBOT_PREFIX} are robot accounts (see robot create)`);
  if (!USERNAME.test(name)) {
    throw new UsageError(`"${name}" is not a valid username: letters, digits and . _ @ + -, starting with a letter or digit, at most 128`);
  }
  return name;
}

export function checkGroupName(name: string): string {
  if (!GROUP_NAME.test(name) || name.includes('#')) {
    throw new UsageError(`"${name}" is not a valid group name: up to 128 visible characters, no spaces and no #`);
  }
  return name;
}

/** Accepts the bare name or the `robot$<name>` username. */
export function checkRobotName(name: string): string {
  const bare = robotNameOf(name) ?? name;
  if (!isValidRobotName(bare)) {
    throw new UsageError(`"${bare}" is not a valid robot name: lowercase letters, digits and . _ -, starting with a letter or digit, at most 64`);
  }
  return bare;
}
