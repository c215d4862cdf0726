import { expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { TokenAuthorizer } from '../../../../registry/services/auth/authorizer.js';
import type { CognitoIdentities } from '../../../../registry/services/auth/cognito-identities.js';
import { TokenSigner, TokenVerifier } from '../../../../registry/services/auth/registry-tokens.js';
import { generateSigningKeyPem, signingKeyFromPem } from '../../../../registry/services/auth/signing-keys.js';
import { createTokenEndpoint } from '../../../../registry/api/token-endpoint.js';
import { TokenService } from '../../../../registry/services/auth/token-service.js';
import { jsonLogger } from '../../../../registry/support/logger.js';
import { createRegistry } from '../../../../registry/api/registry.js';
import { createServices } from '../../../../registry/services/services.js';
import { createAwsClients } from '../../../../registry/storage/aws-clients.js';
import type { AccessStore } from '../../../../registry/storage/access-store.js';
import type { RobotStore } from '../../../../registry/storage/robot-store.js';
import type { RegistryRequest } from '../../../../registry/model/http.js';
import { MemoryLoginState } from './memory-login-state.js';

/** Whatever happens, passwords, tokens and presigned URLs must not reach the logs. */
it('keeps credentials, tokens and presigned query strings out of every log line', async () => {
  const lines: string[] = [];
  const logger = jsonLogger((line) => lines.push(line));
  const key = signingKeyFromPem(generateSigningKeyPem());
  const verifier = new TokenVerifier([key], 'https://r.example/token', 'r.example', { access: 300, refresh: 3600 });
  const users = {
    authenticate: async (username: string, password: string) =>
      password === 'correct horse' ? { username, groups: ['registry-admins'] } : undefined,
  } as unknown as CognitoIdentities;
  const tokens = new TokenService(
    new TokenSigner(key, 'https://r.example/token'),
    verifier,
    users,
    { get: async () => undefined } as unknown as RobotStore,
    { readCached: async () => ({ groupGrants: [], publicPatterns: [] }) } as unknown as AccessStore,
    new MemoryLoginState().asStore(),
    { service: 'r.example', adminGroup: 'registry-admins', accessTokenSeconds: 300, refreshTokenSeconds: 3600 },
  );
  const endpoint = createTokenEndpoint(tokens, logger);
  const basic = (password: string) => `Basic ${Buffer.from(`alice:${password}`).toString('base64')}`;
  const get = (headers: Record<string, string>, query: string): RegistryRequest => ({
    method: 'GET',
    path: '/token',
    query: new URLSearchParams(query),
    headers,
  });

  const good = await endpoint(get({ authorization: basic('correct horse') }, 'scope=repository:a/b:pull&offline_token=true'));
  const { token, refresh_token: refresh } = JSON.parse(String(good.body)) as { token: string; refresh_token: string };
  expect(token).toBeTruthy();
  await endpoint(get({ authorization: basic('wrong battery') }, ''));
  await endpoint({
    method: 'POST',
    path: '/token',
    query: new URLSearchParams(),
    headers: {},
    body: [Buffer.from(`grant_type=password&username=alice&password=${encodeURIComponent('staple form')}`)],
  });

  const dynamo = mockClient(DynamoDBDocumentClient);
  const s3 = mockClient(S3Client);
  dynamo.on(GetCommand).resolves({ Item: { digest: `sha256:${'a'.repeat(64)}`, size: 3, objectKey: 'blobs/x' } });
  const config = { region: 'us-east-1', tableName: 't', bucketName: 'b', presignExpirySeconds: 60, uploadSessionTtlSeconds: 60 };
  const registry = createRegistry(
    createServices(config, createAwsClients(config)),
    logger,
    new TokenAuthorizer(verifier, 'https://r.example/token', 'r.example'),
  );
  for (const authorization of [`Bearer ${token}`, `Bearer ${token}x`, `Bearer ${refresh}`]) {
    await registry({ method: 'GET', path: `/v2/a/b/blobs/sha256:${'a'.repeat(64)}`, query: new URLSearchParams(), headers: { authorization } });
  }
  dynamo.restore();
  s3.restore();

  const log = lines.join('\n');
  expect(lines.length).toBeGreaterThanOrEqual(6);
  for (const secret of [
    'correct horse',
    'wrong battery',
    'staple form',
    token,
    refresh,
    token.split('.')[2]!,
    'X-Amz-Signature',
    'X-Amz-Credential',
  ]) {
    expect(log).not.toContain(secret);
  }
});
