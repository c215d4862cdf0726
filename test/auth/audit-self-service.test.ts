/**
 * The audit log's remaining actors (docs/audit-log.md): a user's own personal-token changes
 * through `/token/personal-tokens`, refused workload (`trust$`) logins with the check that
 * failed, and admin commands that only read or probe, which leave no record.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { AuditRecord } from '../../registry/model/audit/audit-record.js';
import { startLocalRegistry, type LocalRegistry } from '../../scripts/local/local-registry.js';
import { createSkopeo, toolFailure as failure } from '../support/clients.js';
import { startOidcProvider, type OidcProvider } from '../support/oidc-provider.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';
import { adminCli, runAdminCli } from './admin-cli.js';

const SLOW_TEST_MS = 5 * 60 * 1000;
const ADMIN = { username: 'admin', password: 'Admin-Password-1' };
const ALICE = { username: 'alice', password: 'Alice-Password-1' };
const AUDIENCE = 'registry.local';
const JOB = { sub: 'repo:org/app:ref:refs/heads/main', repository: 'org/app', ref: 'refs/heads/main', aud: AUDIENCE };

describe('audit records of self-service tokens, workload logins and read-only admin commands', () => {
  let workDir: string;
  let dataDir: string;
  let registry: LocalRegistry;
  let provider: OidcProvider;
  let receiver: WebhookReceiver;
  const host = () => new URL(registry.url).host;
  const basic = `Basic ${Buffer.from(`${ALICE.username}:${ALICE.password}`).toString('base64')}`;
  const auditList = async (...args: string[]): Promise<AuditRecord[]> =>
    (await adminCli(dataDir, ['audit', 'list', '--json', ...args]))
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as AuditRecord);
  const selfService = (method: string, path = '', body?: unknown) =>
    fetch(`${registry.url}/token/personal-tokens${path}`, {
      method,
      headers: { authorization: basic, 'user-agent': 'audit-test', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  beforeAll(async () => {
    workDir = join(tmpdir(), `audit-ss-${randomUUID().slice(0, 8)}`);
    dataDir = join(workDir, 'data');
    await mkdir(workDir, { recursive: true });
    provider = await startOidcProvider();
    receiver = await startWebhookReceiver();
    registry = await startLocalRegistry({ dataDir, port: 0, quiet: true, auth: 'cognito', admin: ADMIN });
    await adminCli(dataDir, ['user', 'create', ALICE.username, '--password', ALICE.password]);
    const trust = ['--issuer', provider.issuer, '--audience', AUDIENCE, '--claim', 'repository=org/app', '--grant', 'ci/app/*:pull,push'];
    await adminCli(dataDir, ['trust', 'add', 'ci-app', ...trust]);
    await adminCli(dataDir, ['webhook', 'add', 'ci', '--url', receiver.url, '--events', 'push', '--pattern', '*']);
  }, SLOW_TEST_MS);

  afterAll(async () => {
    await registry?.stop();
    await provider?.stop();
    await receiver?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test('a personal token made and revoked through /token/personal-tokens is recorded with its user, refusals too', async () => {
    const created = await selfService('POST', '', { name: 'laptop', expiresDays: 30 });
    expect(created.status).toBe(201);
    const { id, secret } = (await created.json()) as { id: string; secret: string };
    expect((await selfService('POST', '', { name: 'bad name!' })).status).toBe(400);
    expect((await selfService('DELETE', `/${id}`)).status).toBe(204);
    expect((await selfService('DELETE', '/no-such-token')).status).toBe(404);

    const records = await auditList('--action', 'token', '--user', ALICE.username);
    expect(records.map((record) => [record.action, record.outcome, record.reason])).toEqual([
      ['token.create', 'success', undefined],
      ['token.create', 'refused', 'NAME_INVALID'],
      ['token.revoke', 'success', undefined],
      ['token.revoke', 'refused', 'NAME_UNKNOWN'],
    ]);
    expect(records[0]).toMatchObject({
      actor: { subject: ALICE.username, kind: 'user' },
      sourceIp: '127.0.0.1',
      userAgent: 'audit-test',
      detail: { id, name: 'laptop' },
    });
    expect(records[2]).toMatchObject({ detail: { token: id } });
    expect(JSON.stringify(await auditList())).not.toContain(secret);
  });

  test(
    'refused workload logins are recorded with the check that failed',
    async () => {
      const skopeo = await createSkopeo(join(workDir, 'skopeo'));
      const login = (username: string, idToken: string) =>
        failure(skopeo.run(['login', '--tls-verify=false', '-u', username, '-p', idToken, host()]));
      await login('trust$ci-app', provider.mint({ ...JOB, repository: 'org/other' }));
      await login('trust$ci-app', provider.mint({ ...JOB, aud: 'someone-else' }));
      await login('trust$nope', provider.mint(JOB));
      const refused = (await auditList('--action', 'login')).filter(
        (record) => record.outcome === 'refused' && record.detail?.method === 'oidc-id-token',
      );
      expect(refused.map((record) => [record.actor.subject, record.reason])).toEqual(
        expect.arrayContaining([
          ['trust$ci-app', 'claim-mismatch'],
          ['trust$ci-app', 'wrong-audience'],
          ['trust$nope', 'unknown-trust'],
        ]),
      );
      // Whatever skopeo retried, nothing but those three reasons.
      expect(new Set(refused.map((record) => record.reason))).toEqual(new Set(['claim-mismatch', 'wrong-audience', 'unknown-trust']));
      expect(refused[0]).toMatchObject({ sourceIp: '127.0.0.1' });
    },
    SLOW_TEST_MS,
  );

  test('admin commands that only read or probe leave no record; changes do, refused ones too', async () => {
    const before = (await auditList()).length;
    await adminCli(dataDir, ['token', 'list', ALICE.username]);
    await adminCli(dataDir, ['trust', 'list']);
    await adminCli(dataDir, ['webhook', 'list']);
    await adminCli(dataDir, ['webhook', 'test', 'ci']);
    await receiver.waitFor((delivery) => delivery.event.type === 'registry.ping');
    await adminCli(dataDir, ['webhook', 'deliveries', 'ci']);
    expect((await runAdminCli(dataDir, ['upstream', 'test', 'nope'])).code).not.toBe(0);
    await adminCli(dataDir, ['upstream', 'list']);
    await adminCli(dataDir, ['user', 'list']);
    await adminCli(dataDir, ['access', 'list']);
    const after = await auditList();
    expect(after.slice(before).map((record) => record.action)).toEqual([]);

    expect((await runAdminCli(dataDir, ['trust', 'remove', 'nope'])).code).not.toBe(0);
    await adminCli(dataDir, ['trust', 'remove', 'ci-app']);
    const changes = (await auditList('--action', 'trust')).map((record) => [record.action, record.outcome, record.detail?.args]);
    expect(changes).toEqual([
      ['trust.add', 'success', 'ci-app'],
      ['trust.remove', 'refused', 'nope'],
      ['trust.remove', 'success', 'ci-app'],
    ]);
  });
});
