import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { issuerOf, serviceOf, realmOf, type AuthConfig, type RegistryConfig } from '../../config/config.js';
import { AccessStore } from '../../storage/access-store.js';
import type { AwsClients } from '../../storage/aws-clients.js';
import { LoginStateStore } from '../../storage/login-state-store.js';
import { RobotStore } from '../../storage/robot-store.js';
import { PersonalTokenStore } from '../../storage/personal-token-store.js';
import { PersonalTokens } from './personal-tokens.js';
import { TrustStore } from '../../storage/trust-store.js';
import type { Logger } from '../../support/logger.js';
import { openAccess, TokenAuthorizer, type Authorizer } from './authorizer.js';
import type { CognitoIdentities } from './cognito-identities.js';
import { TokenSigner, TokenVerifier } from './registry-tokens.js';
import { signingKeyFromPem, verificationKeyFromPem, type SigningKey, type VerificationKey } from './signing-keys.js';
import { TokenService, type TokenServiceOptions } from './token-service.js';
import { UpstreamStore } from '../../storage/upstream-store.js';
import { NameResolver } from '../pull-through/name-resolver.js';
import { userPoolIdentities } from './user-pool.js';
import { OidcIssuers } from './oidc-issuers.js';
import { WorkloadLogins } from './workload-identity.js';
import { auditLogFor, type AuditLog } from '../audit/audit-log.js';

/**
 * How the deployed functions get their auth: keys from SSM, logins from the Cognito pool (in the
 * local deployed shape: the keys given in the environment, cognito-local).
 */
async function parameter(ssm: SSMClient, name: string | undefined, what: string): Promise<string> {
  if (!name) throw new Error(`${what} parameter is not configured`);
  const { Parameter } = await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
  if (!Parameter?.Value) throw new Error(`${what} parameter ${name} is empty`);
  return Parameter.Value;
}

export async function deployedAuthorizer(auth: AuthConfig, config: RegistryConfig, clients: AwsClients): Promise<Authorizer> {
  if (auth.mode === 'none') return openAccess;
  const pem =
    auth.verificationKey ??
    (await parameter(new SSMClient({ region: auth.keyParameterRegion ?? config.region }), auth.verificationKeyParameter, 'token verification key'));
  const mirror = config.pullThrough?.dockerMirrorBaseUrl;
  return tokenAuthorizerFor([verificationKeyFromPem(pem)], auth, clients, config.tableName, mirror && `${mirror}/token`);
}

/** Verifies registry tokens; an anonymous `_catalog` lists the public patterns' repositories. Deployed and local alike. */
export function tokenAuthorizerFor(
  keys: VerificationKey[],
  auth: AuthConfig,
  clients: AwsClients,
  tableName: string,
  mirrorRealm?: string,
): TokenAuthorizer {
  const access = new AccessStore(clients.dynamo, tableName);
  return new TokenAuthorizer(
    tokenVerifierFor(keys, auth),
    realmOf(auth),
    serviceOf(auth),
    async () => (await access.read()).publicPatterns,
    mirrorRealm,
  );
}

/** Verifies the tokens this configuration issues, and refuses any that live longer. */
export function tokenVerifierFor(keys: VerificationKey[], auth: AuthConfig): TokenVerifier {
  return new TokenVerifier(keys, issuerOf(auth), serviceOf(auth), { access: auth.accessTokenSeconds, refresh: auth.refreshTokenSeconds });
}

/** The token service over a signing key and a user pool, with OIDC workload logins, recording logins in `audit`; deployed and local alike. */
export function tokenServiceFor(
  key: SigningKey,
  auth: AuthConfig,
  users: CognitoIdentities,
  clients: AwsClients,
  tableName: string,
  logger: Logger,
  audit?: AuditLog,
): TokenService {
  return new TokenService(
    new TokenSigner(key, issuerOf(auth)),
    tokenVerifierFor([key], auth),
    users,
    new RobotStore(clients.dynamo, tableName),
    new AccessStore(clients.dynamo, tableName),
    new LoginStateStore(clients.dynamo, tableName),
    {
      service: serviceOf(auth),
      adminGroup: auth.adminGroup,
      accessTokenSeconds: auth.accessTokenSeconds,
      refreshTokenSeconds: auth.refreshTokenSeconds,
      personalTokens: new PersonalTokens(new PersonalTokenStore(clients.dynamo, tableName), users),
      audit,
      canonicalName: canonicalNames(clients, tableName),
    },
    new WorkloadLogins(
      new TrustStore(clients.dynamo, tableName),
      new OidcIssuers({ allowLoopbackHttp: auth.allowLoopbackHttpIssuers === true }),
      logger,
    ),
  );
}

/** Token scopes name repositories as the registry resolves them (pull-through prefixes, the mirror entry). */
function canonicalNames(clients: AwsClients, tableName: string): NonNullable<TokenServiceOptions['canonicalName']> {
  const upstreams = new UpstreamStore(clients.dynamo, tableName);
  const names = new NameResolver(() => upstreams.listCached());
  return (name, entry) => names.canonicalScopeName(name, entry);
}

export async function deployedTokenService(config: RegistryConfig, auth: AuthConfig, clients: AwsClients, logger: Logger): Promise<TokenService> {
  if (!auth.userPoolId || !auth.userPoolClientId) throw new Error('USER_POOL_ID and USER_POOL_CLIENT_ID must be set');
  const pem = auth.signingKey ?? (await parameter(new SSMClient({ region: config.region }), auth.signingKeyParameter, 'token signing key'));
  const users = await userPoolIdentities({
    userPoolId: auth.userPoolId,
    clientId: auth.userPoolClientId,
    region: config.region,
    endpoint: auth.cognitoEndpoint,
  });
  return tokenServiceFor(signingKeyFromPem(pem), auth, users, clients, config.tableName, logger, auditLogFor(config, clients));
}
