import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { JwtVerifier } from 'aws-jwt-verify';
import { issuerOf, realmOf, serviceOf, type AuthConfig, type RegistryConfig } from '../../functions/commons/config.js';
import { TokenAuthorizer } from '../../functions/commons/auth/authorizer.js';
import { CognitoIdentities } from '../../functions/commons/auth/cognito-identities.js';
import { TokenSigner, TokenVerifier } from '../../functions/commons/auth/registry-tokens.js';
import { generateSigningKeyPem, signingKeyFromPem, type SigningKey } from '../../functions/commons/auth/signing-keys.js';
import { TokenService } from '../../functions/commons/auth/token-service.js';
import { AccessStore } from '../../functions/commons/storage/access-store.js';
import type { AwsClients } from '../../functions/commons/storage/aws-clients.js';
import { RobotStore } from '../../functions/commons/storage/robot-store.js';
import { ensureAdminUser, ensureLocalUserPool, startCognitoStandIn, type LocalUserPool } from './cognito-stand-in.js';
import { LOCAL_CREDENTIALS } from './local-credentials.js';

export interface LocalAuth {
  authorizer: TokenAuthorizer;
  tokens: TokenService;
  pool: LocalUserPool;
  cognitoEndpoint: string;
  stop(): Promise<void>;
}

export interface LocalAuthOptions {
  dataDir: string;
  host: string;
  auth: AuthConfig;
  config: RegistryConfig;
  clients: AwsClients;
  admin: { username: string; password: string };
}

/**
 * `REGISTRY_AUTH=cognito npm start`: cognito-local for logins and a token key kept in the data
 * directory, wired into exactly the authorizer and token service the deployed functions use.
 * Only where keys come from differs: a file here, SSM there.
 */
export async function startLocalAuth(options: LocalAuthOptions): Promise<LocalAuth & { adminCreated: boolean }> {
  const cognito = await startCognitoStandIn({ dataDir: options.dataDir, host: options.host });
  try {
    const pool = await ensureLocalUserPool(cognito.endpoint, options.dataDir);
    const adminCreated = await ensureAdminUser(cognito.endpoint, pool, options.admin.username, options.admin.password);
    const key = await localSigningKey(options.dataDir);
    const { auth, config, clients } = options;
    const verifier = new TokenVerifier([key], issuerOf(auth), serviceOf(auth));
    const users = new CognitoIdentities(
      new CognitoIdentityProviderClient({ region: config.region, endpoint: cognito.endpoint, credentials: LOCAL_CREDENTIALS }),
      pool.userPoolId,
      pool.clientId,
      await localCognitoVerifier(pool),
    );
    const tokens = new TokenService(
      new TokenSigner(key, issuerOf(auth)),
      verifier,
      users,
      new RobotStore(clients.dynamo, config.tableName),
      new AccessStore(clients.dynamo, config.tableName),
      { service: serviceOf(auth), adminGroup: auth.adminGroup, accessTokenSeconds: auth.accessTokenSeconds, refreshTokenSeconds: auth.refreshTokenSeconds },
    );
    return {
      authorizer: new TokenAuthorizer(verifier, realmOf(auth), serviceOf(auth)),
      tokens,
      pool,
      cognitoEndpoint: cognito.endpoint,
      adminCreated,
      stop: () => cognito.stop(),
    };
  } catch (error) {
    await cognito.stop();
    throw error;
  }
}

/** Generated on first start and kept, so tokens outlive a restart as they outlive a deploy. */
async function localSigningKey(dataDir: string): Promise<SigningKey> {
  const path = join(dataDir, 'token-signing-key.pem');
  try {
    return signingKeyFromPem(await readFile(path, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const pem = generateSigningKeyPem();
    await writeFile(path, pem, { mode: 0o600, flag: 'wx' });
    return signingKeyFromPem(pem);
  }
}

/**
 * aws-jwt-verify fetches JWKS over https only, and cognito-local serves http: its keys are
 * fetched here once and cached in the verifier, which then checks every token fully.
 */
async function localCognitoVerifier(pool: LocalUserPool) {
  const verifier = JwtVerifier.create({
    issuer: pool.issuer,
    audience: null,
    jwksUri: pool.jwksUri,
    customJwtCheck: ({ payload }) => {
      if (payload.token_use !== 'access' || payload.client_id !== pool.clientId) throw new Error('not an access token of this app client');
    },
  });
  const response = await fetch(pool.jwksUri);
  if (!response.ok) throw new Error(`cognito-local JWKS answered ${response.status}`);
  verifier.cacheJwks((await response.json()) as never);
  return verifier;
}
