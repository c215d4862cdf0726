import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { Jwk } from 'aws-jwt-verify/jwk';

/**
 * The key pair registry tokens are signed with (ECDSA P-256, ES256). The token endpoint holds
 * the private key; registry functions need only the public one.
 */
export interface VerificationKey {
  kid: string;
  jwk: Jwk;
}

export interface SigningKey extends VerificationKey {
  privateKey: KeyObject;
}

export function generateSigningKeyPem(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

export function signingKeyFromPem(pem: string): SigningKey {
  const privateKey = createPrivateKey(pem);
  return { privateKey, ...verificationKeyOf(createPublicKey(privateKey)) };
}

export function verificationKeyFromPem(pem: string): VerificationKey {
  return verificationKeyOf(createPublicKey(pem));
}

function verificationKeyOf(publicKey: KeyObject): VerificationKey {
  const exported = publicKey.export({ format: 'jwk' }) as { kty: string; crv: string; x: string; y: string };
  // RFC 7638 thumbprint: a stable id, so tokens name the key that signed them.
  const kid = createHash('sha256')
    .update(JSON.stringify({ crv: exported.crv, kty: exported.kty, x: exported.x, y: exported.y }))
    .digest('base64url');
  return { kid, jwk: { ...exported, kid, alg: 'ES256', use: 'sig' } as Jwk };
}

export function publicKeyPem(signingKey: SigningKey): string {
  return createPublicKey(signingKey.privateKey).export({ format: 'pem', type: 'spki' }).toString();
}
