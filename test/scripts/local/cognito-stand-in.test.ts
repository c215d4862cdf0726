import { DEFAULT_ADMIN_GROUP } from '../../../registry/model/auth/access-model.js';
import { createPublicKey, createVerify, type JsonWebKey } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AdminAddUserToGroupCommand,
  AdminCreateUserCommand,
  AdminDisableUserCommand,
  AdminEnableUserCommand,
  AdminListGroupsForUserCommand,
  AdminSetUserPasswordCommand,
  CreateGroupCommand,
  InitiateAuthCommand,
  type CognitoIdentityProviderClient,
} from '@aws-sdk/client-cognito-identity-provider';
import {
  ensureAdminUser,
  ensureLocalUserPool,
  localCognitoClient,
  startCognitoStandIn,
  type CognitoStandIn,
  type LocalUserPool,
} from '../../../scripts/local/cognito-stand-in.js';

const ADMIN = 'admin';
const ADMIN_PASSWORD = 'Admin-Password-1';

function decodeJwt(jwt: string): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  const [header, claims] = jwt
    .split('.')
    .slice(0, 2)
    .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')));
  return { header, claims };
}

function login(cognito: CognitoIdentityProviderClient, pool: LocalUserPool, username: string, password: string) {
  return cognito.send(
    new InitiateAuthCommand({
      AuthFlow: 'USER_PASSWORD_AUTH',
      ClientId: pool.clientId,
      AuthParameters: { USERNAME: username, PASSWORD: password },
    }),
  );
}

async function loginError(promise: Promise<unknown>): Promise<{ name: string; message: string }> {
  const error = (await promise.then(
    () => undefined,
    (failure: unknown) => failure,
  )) as { name: string; message: string } | undefined;
  if (!error) throw new Error('the login succeeded');
  return { name: error.name, message: error.message };
}

async function createUser(cognito: CognitoIdentityProviderClient, pool: LocalUserPool, username: string, password: string) {
  await cognito.send(new AdminCreateUserCommand({ UserPoolId: pool.userPoolId, Username: username, MessageAction: 'SUPPRESS' }));
  await cognito.send(new AdminSetUserPasswordCommand({ UserPoolId: pool.userPoolId, Username: username, Password: password, Permanent: true }));
}

describe('cognito stand-in', () => {
  let dataDir: string;
  let standIn: CognitoStandIn;
  let pool: LocalUserPool;
  let cognito: CognitoIdentityProviderClient;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'cognito-stand-in-test-'));
    standIn = await startCognitoStandIn({ dataDir });
    cognito = localCognitoClient(standIn.endpoint);
  });

  afterAll(async () => {
    cognito?.destroy();
    await standIn?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('creates the pool once and finds it again', async () => {
    pool = await ensureLocalUserPool(standIn.endpoint, dataDir);
    const again = await ensureLocalUserPool(standIn.endpoint, dataDir);
    expect(again).toEqual(pool);
    expect(pool.issuer).toBe(`${standIn.endpoint}/${pool.userPoolId}`);
    expect(pool.jwksUri).toBe(`${pool.issuer}/.well-known/jwks.json`);
  });

  it('creates the admin once; its access token names the admin group and verifies with the JWKS', async () => {
    expect(await ensureAdminUser(standIn.endpoint, pool, ADMIN, ADMIN_PASSWORD)).toBe(true);
    expect(await ensureAdminUser(standIn.endpoint, pool, ADMIN, 'another password')).toBe(false);

    const { AuthenticationResult } = await login(cognito, pool, ADMIN, ADMIN_PASSWORD);
    const accessToken = AuthenticationResult?.AccessToken ?? '';
    const { header, claims } = decodeJwt(accessToken);
    expect(claims).toMatchObject({
      iss: pool.issuer,
      token_use: 'access',
      client_id: pool.clientId,
      username: ADMIN,
      'cognito:groups': [DEFAULT_ADMIN_GROUP],
    });

    const response = await fetch(pool.jwksUri);
    expect(response.status).toBe(200);
    const { keys } = (await response.json()) as { keys: (JsonWebKey & { kid: string })[] };
    const jwk = keys.find((key) => key.kid === header.kid);
    expect(jwk).toBeDefined();
    const [signedHeader, signedClaims, signature] = accessToken.split('.');
    const verifier = createVerify('RSA-SHA256').update(`${signedHeader}.${signedClaims}`);
    expect(verifier.verify(createPublicKey({ key: jwk!, format: 'jwk' }), Buffer.from(signature, 'base64url'))).toBe(true);
  });

  it('takes plain usernames', async () => {
    await createUser(cognito, pool, 'alice', 'Alice-Password-1');
    const { AuthenticationResult } = await login(cognito, pool, 'alice', 'Alice-Password-1');
    expect(decodeJwt(AuthenticationResult?.AccessToken ?? '').claims.username).toBe('alice');
  });

  it('refuses a wrong password and an unknown user as Cognito does', async () => {
    expect(await loginError(login(cognito, pool, ADMIN, 'wrong'))).toEqual({
      name: 'NotAuthorizedException',
      message: 'Incorrect username or password.',
    });
    expect(await loginError(login(cognito, pool, 'nobody', 'wrong'))).toEqual({
      name: 'NotAuthorizedException',
      message: 'Incorrect username or password.',
    });
  });

  it('refuses a disabled user, by password and by refresh token, until enabled again', async () => {
    await createUser(cognito, pool, 'carol', 'Carol-Password-1');
    const { AuthenticationResult } = await login(cognito, pool, 'carol', 'Carol-Password-1');
    const refresh = () =>
      cognito.send(
        new InitiateAuthCommand({
          AuthFlow: 'REFRESH_TOKEN_AUTH',
          ClientId: pool.clientId,
          AuthParameters: { REFRESH_TOKEN: AuthenticationResult?.RefreshToken ?? '' },
        }),
      );
    expect((await refresh()).AuthenticationResult?.AccessToken).toBeTruthy();

    await cognito.send(new AdminDisableUserCommand({ UserPoolId: pool.userPoolId, Username: 'carol' }));
    const disabled = { name: 'NotAuthorizedException', message: 'User is disabled.' };
    expect(await loginError(login(cognito, pool, 'carol', 'Carol-Password-1'))).toEqual(disabled);
    expect(await loginError(refresh())).toEqual(disabled);

    await cognito.send(new AdminEnableUserCommand({ UserPoolId: pool.userPoolId, Username: 'carol' }));
    expect((await login(cognito, pool, 'carol', 'Carol-Password-1')).AuthenticationResult?.AccessToken).toBeTruthy();
  });

  it('refuses to create a group twice instead of dropping its members', async () => {
    await cognito.send(new CreateGroupCommand({ UserPoolId: pool.userPoolId, GroupName: 'team-a' }));
    await cognito.send(new AdminAddUserToGroupCommand({ UserPoolId: pool.userPoolId, GroupName: 'team-a', Username: 'alice' }));
    const again = await loginError(cognito.send(new CreateGroupCommand({ UserPoolId: pool.userPoolId, GroupName: 'team-a' })));
    expect(again.name).toBe('GroupExistsException');
    const { Groups } = await cognito.send(new AdminListGroupsForUserCommand({ UserPoolId: pool.userPoolId, Username: 'alice' }));
    expect(Groups?.map((group) => group.GroupName)).toEqual(['team-a']);
  });

  it('publishes an OpenID configuration naming the real issuer and JWKS URL', async () => {
    const response = await fetch(`${pool.issuer}/.well-known/openid-configuration`);
    expect(await response.json()).toMatchObject({ issuer: pool.issuer, jwks_uri: pool.jwksUri });
  });

  it('keeps pool and users across a restart, and stops cleanly', async () => {
    const oldEndpoint = standIn.endpoint;
    await standIn.stop();
    await standIn.stop();
    await expect(fetch(`${oldEndpoint}/health`)).rejects.toThrow();

    standIn = await startCognitoStandIn({ dataDir });
    cognito.destroy();
    cognito = localCognitoClient(standIn.endpoint);
    const restarted = await ensureLocalUserPool(standIn.endpoint, dataDir);
    expect({ userPoolId: restarted.userPoolId, clientId: restarted.clientId }).toEqual({
      userPoolId: pool.userPoolId,
      clientId: pool.clientId,
    });
    expect(await ensureAdminUser(standIn.endpoint, restarted, ADMIN, ADMIN_PASSWORD)).toBe(false);
    const { AuthenticationResult } = await login(cognito, restarted, 'alice', 'Alice-Password-1');
    const { claims } = decodeJwt(AuthenticationResult?.AccessToken ?? '');
    expect(claims).toMatchObject({ iss: restarted.issuer, 'cognito:groups': ['team-a'] });
    pool = restarted;
  });
});
