import { CognitoIdentityProviderClient, type CognitoIdentityProviderClientConfig } from '@aws-sdk/client-cognito-identity-provider';
import { CognitoJwtVerifier, JwtVerifier } from 'aws-jwt-verify';
import type { CognitoTokenVerifier } from './cognito-identities.js';
import { CognitoIdentities } from './cognito-identities.js';

/** Where the logins' user pool is: its ids, and (local use only) a Cognito endpoint of its own. */
export interface UserPoolSettings {
  userPoolId: string;
  clientId: string;
  region: string;
  /** The cognito-local stand-in (`npm start`'s REGISTRY_AUTH=cognito, the local deployed shape). */
  endpoint?: string;
  /** Default: the SDK's credential chain (the function's role). */
  credentials?: CognitoIdentityProviderClientConfig['credentials'];
}

/**
 * The user pool the token endpoint checks passwords and access tokens against. In AWS: Cognito
 * and its verifier (aws-jwt-verify fetches the pool's JWKS from Cognito over https). With a local
 * endpoint: the same client aimed at it, and a verifier of that endpoint's issuer whose keys are
 * fetched here once over http (which aws-jwt-verify never fetches from) and cached, so every
 * token is still checked fully: signature, issuer, expiry, token use and app client.
 */
export async function userPoolIdentities(pool: UserPoolSettings): Promise<CognitoIdentities> {
  const client = new CognitoIdentityProviderClient({
    region: pool.region,
    ...(pool.endpoint ? { endpoint: pool.endpoint } : {}),
    ...(pool.credentials ? { credentials: pool.credentials } : {}),
  });
  const verifier = pool.endpoint
    ? await localPoolVerifier(pool.endpoint, pool.userPoolId, pool.clientId)
    : CognitoJwtVerifier.create({ userPoolId: pool.userPoolId, tokenUse: 'access', clientId: pool.clientId });
  return new CognitoIdentities(client, pool.userPoolId, pool.clientId, verifier);
}

async function localPoolVerifier(endpoint: string, userPoolId: string, clientId: string): Promise<CognitoTokenVerifier> {
  const issuer = `${endpoint.replace(/\/+$/, '')}/${userPoolId}`;
  const jwksUri = `${issuer}/.well-known/jwks.json`;
  const verifier = JwtVerifier.create({
    issuer,
    audience: null,
    jwksUri,
    customJwtCheck: ({ payload }) => {
      if (payload.token_use !== 'access' || payload.client_id !== clientId) throw new Error('not an access token of this app client');
    },
  });
  const response = await fetch(jwksUri);
  if (!response.ok) throw new Error(`the user pool's JWKS at ${jwksUri} answered ${response.status}`);
  verifier.cacheJwks((await response.json()) as never);
  return verifier;
}
