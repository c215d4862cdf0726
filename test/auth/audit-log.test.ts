/**
 * The audit log end to end (docs/audit-log.md): the local registry with authentication, a real
 * client's push, a refused login and an admin's grant, read back with `audit list` as an admin
 * would; what a record holds (actor, source, outcome, TTL) and what it never holds (secrets);
 * and that a time range reads only its own hour partitions.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { hostname, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startLocalRegistry, type LocalRegistry } from '../../scripts/local/local-registry.js';
import { LOCAL_CREDENTIALS } from '../../scripts/local/local-credentials.js';
import type { AuditRecord } from '../../registry/model/audit/audit-record.js';
import { AuditStore } from '../../registry/storage/audit-store.js';
import { createAwsClients, type AwsClients } from '../../registry/storage/aws-clients.js';
import { CallCounter } from '../../registry/storage/call-counter.js';
import { createSkopeo, toolFailure } from '../support/clients.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';
import { runPolicyCli } from '../../scripts/registry-policy.js';
import { adminCli } from './admin-cli.js';

const SLOW_TEST_MS = 5 * 60 * 1000;
const ADMIN = { username: 'admin', password: 'Admin-Password-1' };
const ALICE = { username: 'alice', password: 'Alice-Password-1' };
const WRONG_PASSWORD = 'Wrong-Password-9';
const DAY_SECONDS = 24 * 3600;

describe('the audit log', () => {
  let workDir: string;
  let dataDir: string;
  let registry: LocalRegistry;
  let clients: AwsClients;
  let image: WrittenImage;
  let robotSecret: string;
  let startedAt: number;

  const host = () => new URL(registry.url).host;
  const auditList = async (...args: string[]) =>
    (await adminCli(dataDir, ['audit', 'list', '--json', ...args]))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as AuditRecord);

  beforeAll(async () => {
    startedAt = Date.now();
    workDir = join(tmpdir(), `audit-${randomUUID().slice(0, 8)}`);
    dataDir = join(workDir, 'data');
    await mkdir(workDir, { recursive: true });
    registry = await startLocalRegistry({ dataDir, port: 0, quiet: true, auth: 'cognito', admin: ADMIN });
    clients = createAwsClients(registry.config, LOCAL_CREDENTIALS);
    image = await writeImage(join(workDir, 'source'), { tag: 'v1', seed: 'audit-log', layers: [{ sizeBytes: 32 * 1024 }] });

    await adminCli(dataDir, ['group', 'create', 'team-a']);
    await adminCli(dataDir, ['user', 'create', ALICE.username, '--password', ALICE.password, '--group', 'team-a']);
    await adminCli(dataDir, ['grant', 'team-a', 'team-a/*', 'pull,push']);
    robotSecret = (
      JSON.parse(await adminCli(dataDir, ['robot', 'create', 'ci', '--grant', 'team-a/*:pull', '--expires', '7', '--json'])) as { secret: string }
    ).secret;

    const skopeo = await createSkopeo(join(workDir, 'alice'));
    await skopeo.copy(`oci:${join(workDir, 'source')}:v1`, `docker://${host()}/team-a/app:v1`, [
      '--preserve-digests',
      '--dest-creds',
      `${ALICE.username}:${ALICE.password}`,
    ]);
    await toolFailure(skopeo.run(['login', '--tls-verify=false', '-u', ALICE.username, '-p', WRONG_PASSWORD, host()]));
    // Outside alice's grants: refused at the registry with DENIED.
    await toolFailure(
      skopeo.copy(`oci:${join(workDir, 'source')}:v1`, `docker://${host()}/team-b/app:v1`, ['--dest-creds', `${ALICE.username}:${ALICE.password}`]),
    );
    // A robot's login, so that its secret has passed through the token endpoint too.
    await skopeo.inspect(`docker://${host()}/team-a/app:v1`, ['--creds', `robot$ci:${robotSecret}`]);
  }, SLOW_TEST_MS);

  afterAll(async () => {
    clients?.dynamo.destroy();
    clients?.s3.destroy();
    await registry?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test('audit list shows a skopeo push, a failed login and a grant change, with who did them and from where', async () => {
    const records = await auditList();
    const push = records.find((record) => record.action === 'push' && record.repository === 'team-a/app');
    expect(push).toMatchObject({
      actor: { subject: 'alice', kind: 'user' },
      reference: 'v1',
      digest: image.manifestDigest,
      sourceIp: '127.0.0.1',
      outcome: 'success',
    });
    expect(push?.userAgent).toMatch(/^skopeo\//);
    expect(records.filter((record) => record.action === 'push')).toHaveLength(1);

    expect(records).toContainEqual(
      expect.objectContaining({
        action: 'login',
        actor: { subject: 'alice', kind: 'user' },
        sourceIp: '127.0.0.1',
        outcome: 'refused',
        reason: 'bad-credentials',
      }),
    );
    expect(records).toContainEqual(
      expect.objectContaining({
        action: 'login',
        actor: { subject: 'robot$ci', kind: 'robot' },
        outcome: 'success',
        detail: { method: 'robot-secret' },
      }),
    );
    expect(records).toContainEqual(
      expect.objectContaining({
        action: 'grant',
        actor: { subject: `${userInfo().username}@${hostname()}`, kind: 'admin' },
        outcome: 'success',
        detail: { args: 'team-a team-a/* pull,push' },
      }),
    );
    // Oldest first.
    const times = records.map((record) => record.time);
    expect(times).toEqual([...times].sort());

    const table = await adminCli(dataDir, ['audit', 'list']);
    expect(table.split('\n')[0]).toMatch(/^TIME\s+ACTOR\s+ACTION\s+REPOSITORY\s+REFERENCE\s+SOURCE\s+OUTCOME$/);
    expect(table).toMatch(/alice \(user\)\s+push\s+team-a\/app\s+v1\s+127\.0\.0\.1\s+ok/);
    expect(table).toMatch(/alice \(user\)\s+login\s+127\.0\.0\.1\s+refused bad-credentials/);
  });

  test('filters by action (and the actions under it), user and repository, and by time', async () => {
    expect((await auditList('--action', 'push')).map((record) => record.action)).toEqual(['push']);
    expect(new Set((await auditList('--user', 'alice')).map((record) => record.actor.subject))).toEqual(new Set(['alice']));
    expect((await auditList('--repository', 'team-a/app')).every((record) => record.repository === 'team-a/app')).toBe(true);
    expect((await auditList('--action', 'robot')).map((record) => record.action)).toEqual(['robot.create']);
    expect(await auditList('--until', new Date(startedAt - 60_000).toISOString())).toEqual([]);
  });

  test('records policy changes made with npm run policy, refused ones too', async () => {
    const io = { out: () => undefined, err: () => undefined };
    expect(await runPolicyCli(['--local', '--data-dir', dataDir, 'immutable', 'add', 'team-a/app', '--exclude', 'latest'], io)).toBe(0);
    expect(await runPolicyCli(['--local', '--data-dir', dataDir, 'immutable', 'remove', 'team-b/none'], io)).toBe(1);
    const records = await auditList('--action', 'immutable');
    expect(records.map((record) => [record.action, record.actor.kind, record.outcome, record.detail?.args])).toEqual([
      ['immutable.add', 'admin', 'success', 'team-a/app'],
      ['immutable.remove', 'admin', 'refused', 'team-b/none'],
    ]);
  });

  test('nothing secret is stored or listed: no password, robot secret, token or Authorization header', async () => {
    const { Items = [] } = await clients.dynamo.send(
      new ScanCommand({
        TableName: registry.config.tableName,
        FilterExpression: 'begins_with(PK, :audit)',
        ExpressionAttributeValues: { ':audit': 'AUDIT#' },
      }),
    );
    expect(Items.length).toBeGreaterThan(5);
    const listed = await adminCli(dataDir, ['audit', 'list', '--json']);
    for (const text of [JSON.stringify(Items), listed]) {
      for (const secret of [ALICE.password, WRONG_PASSWORD, ADMIN.password, robotSecret]) expect(text).not.toContain(secret);
      expect(text).not.toMatch(/Bearer|Basic |eyJ|X-Amz-Signature|authorization/i);
    }
  });

  test('each record expires after the retention (90 days by default) through the table TTL', async () => {
    const [push] = (await auditList('--action', 'push')).map((record) => record.id);
    const { Items = [] } = await clients.dynamo.send(
      new ScanCommand({ TableName: registry.config.tableName, FilterExpression: 'id = :id', ExpressionAttributeValues: { ':id': push } }),
    );
    const expiresAt = Items[0]?.expiresAt as number;
    const pushedAt = Date.parse(Items[0]?.time as string) / 1000;
    expect(expiresAt - pushedAt).toBeGreaterThanOrEqual(90 * DAY_SECONDS - 1);
    expect(expiresAt - pushedAt).toBeLessThanOrEqual(90 * DAY_SECONDS + 1);
  });

  test('a time range reads each hour partition it spans once and scans nothing', async () => {
    const counter = new CallCounter();
    const counted = createAwsClients(registry.config, LOCAL_CREDENTIALS, counter);
    try {
      const store = new AuditStore(counted.dynamo, registry.config.tableName);
      const until = new Date();
      const since = new Date(until.getTime() - 5 * 3600 * 1000);
      counter.take();
      const found: AuditRecord[] = [];
      for await (const record of store.query({ since, until })) found.push(record);
      // Five hours back from now touch six hour partitions (or five, on the hour exactly).
      const hours = Math.floor(until.getTime() / 3_600_000) - Math.floor(since.getTime() / 3_600_000) + 1;
      expect(counter.take().calls).toEqual({ 'DynamoDB.Query': hours });
      expect(found.some((record) => record.action === 'push')).toBe(true);

      counter.take();
      for await (const _ of store.query({ since: new Date(until.getTime() - 60_000), until, action: 'push' })) void _;
      expect(counter.take().calls['DynamoDB.Query']).toBeLessThanOrEqual(2);
    } finally {
      counted.dynamo.destroy();
      counted.s3.destroy();
    }
  });
});
