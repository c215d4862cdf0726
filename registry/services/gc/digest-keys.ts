/**
 * Compact map keys for digests. A million blobs means a million map keys: a `sha256:<64 hex>`
 * string costs about 90 bytes in V8, its 32 bytes as a one-byte string about 50. Digests of
 * other algorithms are kept as they are (they never start with the marker character).
 */
const SHA256 = /^sha256:([0-9a-f]{64})$/;
const MARKER = '\u0001';

export function digestKey(digest: string): string {
  const hex = SHA256.exec(digest)?.[1];
  return hex ? MARKER + Buffer.from(hex, 'hex').toString('latin1') : digest;
}

export function digestOfKey(key: string): string {
  return key.startsWith(MARKER) ? `sha256:${Buffer.from(key.slice(1), 'latin1').toString('hex')}` : key;
}
