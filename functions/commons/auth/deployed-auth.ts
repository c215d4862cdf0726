import { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { CognitoJwtVerifier } from 'aws-jwt-verify';
import { issuerOf, serviceOf, realmOf, type AuthConfig, type RegistryConfig } from '../config.js';
import { AccessStore } from '../storage/access-store.js';
import type { AwsClients } from '../storage/aws-clients.js';
import { RobotStore } from '../storage/robot-store.js';
import { openAccess, TokenAuthorizer, type Authorizer } from './authorizer.js';
import { CognitoIdentities } from './cognito-identities.js';
import { TokenSigner, TokenVerifier } from './registry-tokens.js';
import { signingKeyFromPem, verificationKeyFromPem } from './signing-keys.js';
import { TokenService } from './token-service.js';

/** How the deployed functions get their auth: keys from SSM, logins from the Cognito pool. */
async function parameter(ssm: SSMClient, name: string | undefined, what: string): Promise<string> {
  if (!name) throw new Error(`${what} parameter is not configured`);
  const { Parameter } = await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
  if (!Parameter?.Value) throw new Error(`${what} parameter ${name} is empty`);
  return Parameter.Value;
}

export async function deployedAuthorizer(auth: AuthConfig, region: string): Promise<Authorizer> {
  if (auth.mode === 'none') return openAccess;
  const ssm = new SSMClient({ region: auth.keyParameterRegion ?? region });
  const pem = await parameter(ssm, auth.verificationKeyParameter, 'token verification key');
  const verifier = new TokenVerifier([verificationKeyFromPem(pem)], issuerOf(auth), serviceOf(auth));
  return new TokenAuthorizer(verifier, realmOf(auth), serviceOf(auth));
}

export async function deployedTokenService(config: RegistryConfig, auth: AuthConfig, clients: AwsClients): Promise<TokenService> {
  if (!auth.userPoolId || !auth.userPoolClientId) throw new Error('USER_POOL_ID and USER_POOL_CLIENT_ID must be set');
  const key = signingKeyFromPem(await parameter(new SSMClient({ region: config.region }), auth.signingKeyParameter, 'token signing key'));
  const cognitoVerifier = CognitoJwtVerifier.create({ userPoolId: auth.userPoolId, tokenUse: 'access', clientId: auth.userPoolClientId });
  return new TokenService(
    new TokenSigner(key, issuerOf(auth)),
    new TokenVerifier([key], issuerOf(auth), serviceOf(auth)),
    new CognitoIdentities(new CognitoIdentityProviderClient({ region: config.region }), auth.userPoolId, auth.userPoolClientId, cognitoVerifier),
    new RobotStore(clients.dynamo, config.tableName),
    new AccessStore(clients.dynamo, config.tableName),
    { service: serviceOf(auth), adminGroup: auth.adminGroup, accessTokenSeconds: auth.accessTokenSeconds, refreshTokenSeconds: auth.refreshTokenSeconds },
  );
}
