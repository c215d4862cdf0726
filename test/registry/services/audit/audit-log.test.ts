/**
 * The audit log's recording, against mocked DynamoDB: a record that cannot be written never fails
 * what it records; logins record who, from where and why they were refused, never the
 * credential; what a client sends is bounded.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { createTokenEndpoint } from '../../../../registry/api/token-endpoint.js';
import type { RegistryRequest } from '../../../../registry/model/http.js';
import { AuditLog } from '../../../../registry/services/audit/audit-log.js';
import type { CognitoIdentities } from '../../../../registry/services/auth/cognito-identities.js';
import { TokenSigner, TokenVerifier } from '../../../../registry/services/auth/registry-tokens.js';
import { generateSigningKeyPem, signingKeyFromPem } from '../../../../registry/services/auth/signing-keys.js';
import { TokenService } from '../../../../registry/services/auth/token-service.js';
import type { AccessStore } from '../../../../registry/storage/access-store.js';
import { AuditStore } from '../../../../registry/storage/audit-store.js';
import type { RobotStore } from '../../../../registry/storage/robot-store.js';
import { jsonLogger, silentLogger } from '../../../../registry/support/logger.js';
import { useAwsMocks } from '../../../support/aws-mocks.js';
import { MemoryLoginState } from '../auth/memory-login-state.js';

const { ddb } = useAwsMocks();
const document = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));

function auditLog(logger = silentLogger, settings = {}): AuditLog {
  return new AuditLog(new AuditStore(document, 't'), settings, logger);
}

function putItems(): Record<string, unknown>[] {
  return ddb.commandCalls(PutCommand).map((call) => call.args[0].input.Item as Record<string, unknown>);
}

describe('AuditLog.record', () => {
  it('resolves when the write fails, and says so in an error line without the record', async () => {
    ddb.on(PutCommand).rejects(Object.assign(new Error('boom'), { name: 'ProvisionedThroughputExceededException' }));
    const lines: string[] = [];
    await expect(
      auditLog(jsonLogger((line) => lines.push(line))).record({ action: 'push', actor: { subject: 'alice', kind: 'user' }, outcome: 'success' }),
    ).resolves.toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: 'error',
      message: 'audit record not written',
      action: 'push',
      error: 'ProvisionedThroughputExceededException',
    });
  });

  it('keys the record by its hour and time, sets the TTL from the retention, and bounds what clients send', async () => {
    ddb.on(PutCommand).resolves({});
    await auditLog(silentLogger, { retentionDays: 7 }).record({
      action: 'push',
      actor: { subject: 'alice', kind: 'user' },
      outcome: 'success',
      userAgent: 'x'.repeat(10_000),
    });
    const [item] = putItems();
    const time = item!.time as string;
    expect(item).toMatchObject({ PK: `AUDIT#${time.slice(0, 13)}`, SK: `${time}#${item!.id}`, subject: 'alice', actorKind: 'user' });
    expect(item!.expiresAt as number).toBeCloseTo(Date.parse(time) / 1000 + 7 * 86400, -1);
    expect((item!.userAgent as string).length).toBeLessThanOrEqual(256);
  });
});

describe('logins in the audit log', () => {
  const key = signingKeyFromPem(generateSigningKeyPem());
  const users = {
    authenticate: async (username: string, password: string) => (password === 'correct horse' ? { username, groups: [] } : undefined),
  } as unknown as CognitoIdentities;
  const endpoint = () =>
    createTokenEndpoint(
      new TokenService(
        new TokenSigner(key, 'https://r.example/token'),
        new TokenVerifier([key], 'https://r.example/token', 'r.example', { access: 300, refresh: 3600 }),
        users,
        { get: async () => undefined } as unknown as RobotStore,
        { readCached: async () => ({ groupGrants: [], publicPatterns: [] }) } as unknown as AccessStore,
        new MemoryLoginState().asStore(),
        {
          service: 'r.example',
          adminGroup: 'admins',
          accessTokenSeconds: 300,
          refreshTokenSeconds: 3600,
          audit: auditLog(),
          loginThrottle: { userFreeFailures: 1, sourceFreeFailures: 100, firstLockSeconds: 60, maxLockSeconds: 60, forgetSeconds: 60 },
        },
      ),
      silentLogger,
    );
  const get = (user: string, password: string, query = ''): RegistryRequest => ({
    method: 'GET',
    path: '/token',
    query: new URLSearchParams(query),
    headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`, 'user-agent': 'docker/28.0' },
    sourceIp: '192.0.2.7',
  });

  it('records success, a wrong password, a throttled attempt and a bad refresh token, with reason codes and never a credential', async () => {
    ddb.on(PutCommand).resolves({});
    const tokens = endpoint();
    const good = JSON.parse(String((await tokens(get('alice', 'correct horse', 'offline_token=true'))).body)) as {
      token: string;
      refresh_token: string;
    };
    expect((await tokens(get('alice', 'wrong battery'))).status).toBe(401);
    expect((await tokens(get('alice', 'wrong battery'))).status).toBe(429);
    const refresh = await tokens({
      method: 'POST',
      path: '/token',
      query: new URLSearchParams(),
      headers: { 'user-agent': 'docker/28.0' },
      sourceIp: '192.0.2.7',
      body: [Buffer.from(`grant_type=refresh_token&refresh_token=${good.refresh_token}x`)],
    });
    expect(refresh.status).toBe(401);

    const items = putItems();
    expect(items.map((item) => [item.action, item.subject, item.actorKind, item.outcome, item.reason])).toEqual([
      ['login', 'alice', 'user', 'success', undefined],
      ['login', 'alice', 'user', 'refused', 'bad-credentials'],
      ['login', 'alice', 'user', 'refused', 'throttled'],
      ['login', 'unknown', 'anonymous', 'refused', 'invalid-refresh-token'],
    ]);
    expect(items.every((item) => item.sourceIp === '192.0.2.7' && item.userAgent === 'docker/28.0')).toBe(true);
    const stored = JSON.stringify(items);
    for (const secret of ['correct horse', 'wrong battery', good.token, good.refresh_token, 'Basic ']) expect(stored).not.toContain(secret);
  });
});
