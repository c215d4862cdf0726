/**
 * A small OIDC provider on loopback, as a CI system's token service looks to the registry: its
 * OpenID configuration, its JWKS, and ID tokens minted with RS256 or ES256 keys (node:crypto), with
 * key rotation; and the forgeries an attacker would try (`alg: none`, HS256 with the public key
 * as the secret). Plain http by default (the local registry allows that on loopback), or https
 * with a self-signed certificate (selfSignedCertificate) a process trusts through NODE_EXTRA_CA_CERTS.
 */
import { execFileSync } from 'node:child_process';
import { createHmac, generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export type SigningAlgorithm = 'RS256' | 'ES256';

interface ProviderKey {
  kid: string;
  alg: SigningAlgorithm;
  privateKey: KeyObject;
  publicJwk: Record<string, unknown>;
  publicPem: string;
}

export interface MintOptions {
  alg?: SigningAlgorithm;
  /** Sign with the current key but name this `kid` in the header. */
  kid?: string;
  /** Sign with a key the JWKS does not (yet) publish. */
  unpublished?: boolean;
}

export interface OidcProvider {
  issuer: string;
  /** Paths the provider was asked for, in order. */
  requests: string[];
  /** An ID token: `iss` is the provider, `iat`/`nbf` now, `exp` in five minutes, unless the claims say otherwise. */
  mint(claims: Record<string, unknown>, options?: MintOptions): string;
  /** An unsigned token (`alg: none`). */
  unsigned(claims: Record<string, unknown>): string;
  /** HS256 with the RS256 key's public PEM as the HMAC secret (the algorithm-confusion attack). */
  hs256WithPublicKey(claims: Record<string, unknown>): string;
  /** A new key of that algorithm becomes the one minting; the old ones stay published. */
  rotate(alg: SigningAlgorithm): string;
  /** Publishes a key minted with `unpublished` so far. */
  publishPending(): void;
  stop(): Promise<void>;
}

function newKey(alg: SigningAlgorithm): ProviderKey {
  const { privateKey, publicKey } =
    alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = randomUUID();
  return {
    kid,
    alg,
    privateKey,
    publicJwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' },
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * A self-signed certificate for 127.0.0.1 (openssl), written into the directory: made before the
 * processes that must trust it start, since NODE_EXTRA_CA_CERTS is read once at a process's start.
 */
export function selfSignedCertificate(dir: string): Certificate {
  const certFile = join(dir, 'oidc-ca.pem');
  const keyFile = join(dir, 'oidc-key.pem');
  const subject = ['-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'];
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile];
  execFileSync('openssl', ['req', '-x509', ...key, '-days', '1', ...subject, '-out', certFile], { stdio: 'ignore' });
  return { certFile, keyFile };
}

export interface Certificate {
  certFile: string;
  keyFile: string;
}

export async function startOidcProvider(options: { https?: Certificate } = {}): Promise<OidcProvider> {
  const published: ProviderKey[] = [newKey('RS256'), newKey('ES256')];
  const pending: ProviderKey[] = [];
  const current: Record<SigningAlgorithm, ProviderKey> = { RS256: published[0], ES256: published[1] };
  const requests: string[] = [];
  let issuer = '';

  const handle = (request: IncomingMessage, response: ServerResponse) => {
    const path = request.url ?? '/';
    requests.push(path);
    const json = (body: unknown) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    if (path === '/.well-known/openid-configuration') {
      return json({ issuer, jwks_uri: `${issuer}/.well-known/jwks`, id_token_signing_alg_values_supported: ['RS256', 'ES256'] });
    }
    if (path === '/.well-known/jwks') return json({ keys: published.map((key) => key.publicJwk) });
    response.writeHead(404).end();
  };

  const certificate = options.https;
  const server: Server = certificate
    ? createHttpsServer({ key: readFileSync(certificate.keyFile), cert: readFileSync(certificate.certFile) }, handle)
    : createHttpServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `${options.https ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const claimsOf = (claims: Record<string, unknown>) => {
    const now = Math.floor(Date.now() / 1000);
    return { iss: issuer, iat: now, nbf: now, exp: now + 300, jti: randomUUID(), ...claims };
  };
  const signWith = (key: ProviderKey, kid: string, claims: Record<string, unknown>) => {
    const input = `${part({ alg: key.alg, typ: 'JWT', kid })}.${part(claimsOf(claims))}`;
    const signature = sign('sha256', Buffer.from(input), key.alg === 'ES256' ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' } : key.privateKey);
    return `${input}.${signature.toString('base64url')}`;
  };

  return {
    issuer,
    requests,
    mint(claims, mintOptions = {}) {
      const alg = mintOptions.alg ?? 'RS256';
      let key = current[alg];
      if (mintOptions.unpublished) {
        key = newKey(alg);
        pending.push(key);
      }
      return signWith(key, mintOptions.kid ?? key.kid, claims);
    },
    unsigned(claims) {
      return `${part({ alg: 'none', typ: 'JWT', kid: current.RS256.kid })}.${part(claimsOf(claims))}.`;
    },
    hs256WithPublicKey(claims) {
      const input = `${part({ alg: 'HS256', typ: 'JWT', kid: current.RS256.kid })}.${part(claimsOf(claims))}`;
      return `${input}.${createHmac('sha256', current.RS256.publicPem).update(input).digest('base64url')}`;
    },
    rotate(alg) {
      const key = newKey(alg);
      published.push(key);
      current[alg] = key;
      return key.kid;
    },
    publishPending() {
      published.push(...pending.splice(0));
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
