import { randomBytes, scrypt, timingSafeEqual, type BinaryLike, type ScryptOptions } from 'node:crypto';

/** scrypt's recommended interactive cost; a token request pays it once per robot login. */
const SCRYPT = { N: 2 ** 14, r: 8, p: 1, keyLength: 32 };

function derive(secret: BinaryLike, salt: Buffer, cost = SCRYPT.N): Promise<Buffer> {
  const options: ScryptOptions = { N: cost, r: SCRYPT.r, p: SCRYPT.p };
  return new Promise((resolve, reject) => scrypt(secret, salt, SCRYPT.keyLength, options, (error, key) => (error ? reject(error) : resolve(key))));
}

/** A fresh secret, shown once to whoever creates the robot and never stored. */
export function generateRobotSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** `scrypt$<N>$<salt>$<hash>`, so the cost can be raised later without breaking old robots. */
export async function hashRobotSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await derive(secret, salt);
  return ['scrypt', SCRYPT.N, salt.toString('base64url'), hash.toString('base64url')].join('$');
}

/**
 * Stands in for the hash of a robot that does not exist, at the current cost: made from 32
 * random bytes that were thrown away, so no secret matches it.
 */
const DUMMY_HASH = ['scrypt', SCRYPT.N, 'eHMlc89nsb7hjkgclfOagw', 'a9YhJdHg3cXl2JzyV709v5MLBCxC-AN1if4JrMwNtE0'].join('$');

/**
 * Checks a secret against a robot's stored hash. Without one (no such robot) it derives against
 * a dummy hash of the same cost all the same, so that a refusal takes as long whether or not
 * the robot exists: its names cannot be found by timing.
 */
export async function verifyRobotSecret(secret: string, stored: string | undefined): Promise<boolean> {
  if (stored === undefined) {
    await verifyRobotSecret(secret, DUMMY_HASH);
    return false;
  }
  const [scheme, cost, salt, hash] = stored.split('$');
  const n = Number(cost);
  if (scheme !== 'scrypt' || !Number.isInteger(n) || n < 2 || n > 2 ** 20 || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64url');
  const actual = await derive(secret, Buffer.from(salt, 'base64url'), n);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
