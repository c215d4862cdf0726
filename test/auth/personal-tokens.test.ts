/**
 * Personal access tokens end to end: the local registry with authentication on, tokens made
 * with the admin CLI and through the self-service endpoint, used by podman and skopeo as the
 * password.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { jsonLogger } from '../../registry/support/logger.js';
import { keys } from '../../registry/storage/keys.js';
import { CallCounter } from '../../registry/storage/call-counter.js';
import { startLocalRegistry, type LocalRegistry } from '../../scripts/local/local-registry.js';
import { LOCAL_CREDENTIALS } from '../../scripts/local/local-credentials.js';
import { createPodman, createSkopeo, toolFailure as failure, type Podman, type Skopeo } from '../support/clients.js';
import { pulledManifestDigest } from '../support/layout-compare.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';
import { adminCli, runAdminCli } from './admin-cli.js';

const SLOW_TEST_MS = 5 * 60 * 1000;
const ADMIN = { username: 'admin', password: 'Admin-Password-1' };
const ALICE = { username: 'alice', password: 'Alice-Password-1' };
const BOB = { username: 'bob', password: 'Bob-Password-1' };
const REFUSED = /denied: user \S+ may not (pull|push|delete) |403 \(Forbidden\)/;
const LOGIN_REFUSED = /invalid username\/password/;
const TOKEN_FORMAT = /^rpat_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/;

interface Credentials {
  username: string;
  password: string;
}

describe('personal access tokens against the local registry', () => {
  let workDir: string;
  let dataDir: string;
  let registry: LocalRegistry;
  let image: WrittenImage;
  let source: string;
  let dynamo: DynamoDBDocumentClient;
  const logLines: string[] = [];
  const calls = new CallCounter();
  /** Every secret the tests saw, to look for in logs, listings and the table. */
  const secrets: string[] = [];

  const host = () => new URL(registry.url).host;
  const ref = (repositoryAndTag: string) => `docker://${host()}/${repositoryAndTag}`;
  const login = (client: Skopeo | Podman, { username, password }: Credentials) =>
    client.run(['login', '--tls-verify=false', '-u', username, '-p', password, host()]);
  const basic = ({ username, password }: Credentials) => `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;

  async function adminToken(user: string, ...options: string[]): Promise<string> {
    const created = JSON.parse(await adminCli(dataDir, ['token', 'create', user, ...options, '--json'])) as { secret: string };
    secrets.push(created.secret);
    return created.secret;
  }

  /** A token request as `docker login` makes it: 200 with a token, or the refusal's status. */
  async function tokenRequest(
    credentials: Credentials,
    scope = 'repository:team-a/app:pull',
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const query = new URLSearchParams({ service: host(), scope, offline_token: 'true' });
    const response = await fetch(`${registry.url}/token?${query}`, { headers: { authorization: basic(credentials) } });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  function selfService(method: string, credentials: Credentials | undefined, path = '', body?: unknown): Promise<Response> {
    const headers: Record<string, string> = credentials ? { authorization: basic(credentials) } : {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetch(`${registry.url}/token/personal-tokens${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  beforeAll(async () => {
    // Short: podman limits its run root to 50 characters.
    workDir = join(tmpdir(), `pat-${randomUUID().slice(0, 8)}`);
    dataDir = join(workDir, 'data');
    await mkdir(workDir, { recursive: true });
    registry = await startLocalRegistry({
      dataDir,
      port: 0,
      auth: 'cognito',
      admin: ADMIN,
      logger: jsonLogger((line) => logLines.push(line)),
      callCounter: calls,
    });
    dynamo = DynamoDBDocumentClient.from(
      new DynamoDBClient({ region: registry.config.region, endpoint: registry.config.dynamoEndpoint, credentials: LOCAL_CREDENTIALS }),
    );
    source = join(workDir, 'source');
    image = await writeImage(source, { tag: 'v1', seed: 'auth/personal-tokens', layers: [{ sizeBytes: 64 * 1024 }, { sizeBytes: 512 * 1024 }] });

    await adminCli(dataDir, ['group', 'create', 'team-a']);
    for (const user of [ALICE, BOB]) {
      await adminCli(dataDir, ['user', 'create', user.username, '--password', user.password, '--group', 'team-a']);
    }
    await adminCli(dataDir, ['grant', 'team-a', 'team-a/*', 'pull,push']);
    const admin = await createSkopeo(join(workDir, 'admin-skopeo'));
    for (const repository of ['team-a/app', 'team-b/secret']) {
      await admin.copy(`oci:${source}:v1`, ref(`${repository}:v1`), ['--preserve-digests', '--dest-creds', `${ADMIN.username}:${ADMIN.password}`]);
    }
  }, SLOW_TEST_MS);

  afterAll(async () => {
    dynamo?.destroy();
    await registry?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test(
    'podman logs in with a token as the password, pushes inside the user namespace, is refused outside, and stops at once when it is revoked',
    async () => {
      const secret = await adminToken(ALICE.username, '--name', 'laptop', '--expires', '30');
      expect(secret).toMatch(TOKEN_FORMAT);
      const podman = await createPodman(join(workDir, 'podman'));
      try {
        await login(podman, { username: ALICE.username, password: secret });
        await podman.pull(`${host()}/team-a/app:v1`);
        expect((await podman.inspectImage(`${host()}/team-a/app:v1`)).Digest).toBe(image.manifestDigest);
        await podman.push(`${host()}/team-a/app:v1`, `${host()}/team-a/podman:v1`);
        expect((await failure(podman.push(`${host()}/team-a/app:v1`, `${host()}/team-b/podman:v1`))).stderr).toMatch(REFUSED);
        // Only the owner's name goes with it.
        expect((await failure(login(podman, { username: BOB.username, password: secret }))).stderr).toMatch(LOGIN_REFUSED);

        await adminCli(dataDir, ['token', 'revoke', ALICE.username, 'laptop']);
        // podman keeps the token as its stored login: the next push asks for a token with it and is refused.
        const stale = await failure(podman.push(`${host()}/team-a/app:v1`, `${host()}/team-a/after-revoke:v1`));
        expect(stale.stderr).toMatch(/unauthorized|invalid username\/password/);
        expect((await failure(login(podman, { username: ALICE.username, password: secret }))).stderr).toMatch(LOGIN_REFUSED);
      } finally {
        await podman.destroy();
      }
    },
    SLOW_TEST_MS,
  );

  test(
    'skopeo with a token restricted to one repository and pull: copies that, and is refused a push there and a pull elsewhere',
    async () => {
      const created = await selfService('POST', ALICE, '', { name: 'ci-pull', expiresDays: 7, grants: ['team-a/app:pull'] });
      expect(created.status).toBe(201);
      const { secret } = (await created.json()) as { secret: string };
      secrets.push(secret);
      const skopeo = await createSkopeo(join(workDir, 'restricted-skopeo'));
      await login(skopeo, { username: ALICE.username, password: secret });

      const pulled = join(workDir, 'pulled-restricted');
      await skopeo.copy(ref('team-a/app:v1'), `oci:${pulled}:v1`, ['--preserve-digests']);
      expect(await pulledManifestDigest(pulled, 'v1')).toBe(image.manifestDigest);
      expect((await failure(skopeo.copy(`oci:${source}:v1`, ref('team-a/app:v2'), ['--preserve-digests']))).stderr).toMatch(REFUSED);
      expect((await failure(skopeo.copy(`oci:${source}:v1`, ref('team-a/other:v1'), ['--preserve-digests']))).stderr).toMatch(REFUSED);
      // Alice may push to team-a/app herself; the token may not, nor pull what Alice may not.
      expect((await tokenRequest({ username: ALICE.username, password: secret }, 'repository:team-a/app:pull,push')).body.scope).toBe(
        'repository:team-a/app:pull',
      );
      expect((await tokenRequest({ username: ALICE.username, password: secret }, 'repository:team-b/secret:pull')).body.scope).toBe('');
      // A grant beyond the user's rights gives nothing beyond them.
      const wide = await adminToken(ALICE.username, '--name', 'wide', '--grant', '*:admin');
      expect((await tokenRequest({ username: ALICE.username, password: wide }, 'repository:team-b/secret:pull')).body.scope).toBe('');
      expect((await tokenRequest({ username: ALICE.username, password: wide }, 'repository:team-a/x:pull,push,delete')).body.scope).toBe(
        'repository:team-a/x:pull,push',
      );
    },
    SLOW_TEST_MS,
  );

  test(
    'an expired token, a disabled user and a password reset with --revoke-tokens are refused at once; a plain password reset keeps tokens',
    async () => {
      const expiring = await adminToken(BOB.username, '--name', 'expiring', '--expires', '1');
      const kept = await adminToken(BOB.username, '--name', 'kept');
      for (const secret of [expiring, kept]) expect((await tokenRequest({ username: BOB.username, password: secret })).status).toBe(200);
      // A day later, as far as the token knows.
      const [{ id }] = (JSON.parse(await adminCli(dataDir, ['token', 'list', BOB.username, '--json'])) as { id: string; name: string }[]).filter(
        (token) => token.name === 'expiring',
      );
      await dynamo.send(
        new UpdateCommand({
          TableName: registry.config.tableName,
          Key: keys.personalToken(BOB.username, id),
          UpdateExpression: 'SET validUntil = :past',
          ExpressionAttributeValues: { ':past': Math.floor(Date.now() / 1000) - 1 },
        }),
      );
      expect((await tokenRequest({ username: BOB.username, password: expiring })).status).toBe(401);

      await adminCli(dataDir, ['user', 'set-password', BOB.username, '--password', 'Bob-Password-2']);
      expect((await tokenRequest({ username: BOB.username, password: kept })).status).toBe(200);
      await adminCli(dataDir, ['user', 'set-password', BOB.username, '--password', 'Bob-Password-3', '--revoke-tokens']);
      expect((await tokenRequest({ username: BOB.username, password: kept })).status).toBe(401);

      await adminCli(dataDir, ['user', 'create', 'carol', '--password', 'Carol-Password-1', '--group', 'team-a']);
      const carols = await adminToken('carol', '--name', 'laptop');
      expect((await tokenRequest({ username: 'carol', password: carols })).status).toBe(200);
      await adminCli(dataDir, ['user', 'disable', 'carol']);
      expect((await tokenRequest({ username: 'carol', password: carols })).status).toBe(401);
      // Enabling her again does not bring the token back.
      await adminCli(dataDir, ['user', 'enable', 'carol']);
      expect((await tokenRequest({ username: 'carol', password: carols })).status).toBe(401);
      const listed = JSON.parse(await adminCli(dataDir, ['token', 'list', 'carol', '--json'])) as { status: string }[];
      expect(listed).toEqual([expect.objectContaining({ status: 'revoked' })]);
    },
    SLOW_TEST_MS,
  );

  test(
    'self-service over HTTP: create with the password (secret once), list, revoke; a token cannot create tokens, nor anyone touch another user’s',
    async () => {
      expect((await selfService('GET', undefined)).status).toBe(401);
      expect((await selfService('GET', { username: ALICE.username, password: 'wrong' })).status).toBe(401);
      expect((await selfService('POST', ALICE, '', 'not json')).status).toBe(400);
      expect((await selfService('POST', ALICE, '', { name: 'x', grants: ['team-a/*:write'] })).status).toBe(400);
      expect((await selfService('POST', ALICE, '', { name: 'x', expiresDays: 0 })).status).toBe(400);
      expect((await selfService('PUT', ALICE)).status).toBe(405);

      const created = await selfService('POST', ALICE, '', { name: 'desktop', expiresDays: 90 });
      expect(created.status).toBe(201);
      expect(created.headers.get('cache-control')).toBe('no-store');
      const token = (await created.json()) as { id: string; secret: string; name: string; expiresAt: string; status: string };
      expect(token).toMatchObject({ name: 'desktop', status: 'active', secret: expect.stringMatching(TOKEN_FORMAT) });
      secrets.push(token.secret);
      const asToken = { username: ALICE.username, password: token.secret };
      expect((await selfService('POST', ALICE, '', { name: 'desktop' })).status).toBe(403);

      // A token logs in without a refresh token: a stored login keeps the token, re-checked at each use.
      const issued = await tokenRequest(asToken);
      expect(issued.status).toBe(200);
      expect(issued.body.refresh_token).toBeUndefined();
      // That login noted the date; more within the hour read the token and write nothing.
      calls.take();
      for (let i = 0; i < 3; i++) expect((await tokenRequest(asToken)).status).toBe(200);
      const { calls: byOperation } = calls.take();
      expect(byOperation['DynamoDB.GetItem']).toBeGreaterThanOrEqual(3);
      expect(byOperation['DynamoDB.UpdateItem']).toBeUndefined();

      expect((await selfService('POST', asToken, '', { name: 'child' })).status).toBe(403);
      const listed = await selfService('GET', asToken);
      expect(listed.status).toBe(200);
      const listing = await listed.text();
      expect(listing).not.toContain(token.secret);
      expect(listing).not.toContain('scrypt');
      const { tokens } = JSON.parse(listing) as { tokens: { id: string; name: string; lastUsedAt: string | null }[] };
      expect(tokens.map((listedToken) => listedToken.name)).toEqual(expect.arrayContaining(['desktop', 'ci-pull']));
      expect(tokens.find((listedToken) => listedToken.id === token.id)?.lastUsedAt).not.toBeNull();

      // Bob sees none of Alice's, and cannot revoke hers, by id or by name.
      const bobs = (await (await selfService('GET', { username: BOB.username, password: 'Bob-Password-3' })).json()) as { tokens: { id: string }[] };
      expect(bobs.tokens.map((listedToken) => listedToken.id)).not.toContain(token.id);
      for (const target of [token.id, 'desktop']) {
        expect((await selfService('DELETE', { username: BOB.username, password: 'Bob-Password-3' }, `/${target}`)).status).toBe(404);
      }
      expect((await tokenRequest(asToken)).status).toBe(200);

      expect((await selfService('DELETE', ALICE, `/${token.id}`)).status).toBe(204);
      expect((await tokenRequest(asToken)).status).toBe(401);
      expect((await selfService('DELETE', ALICE, `/${token.id}x`)).status).toBe(404);
    },
    SLOW_TEST_MS,
  );

  test('token create refuses a missing name, a bad expiry or grant (usage, exit 2), and an unknown user or a taken name (exit 1)', async () => {
    const results = await Promise.all([
      runAdminCli(dataDir, ['token', 'create', ALICE.username]),
      runAdminCli(dataDir, ['token', 'create', ALICE.username, '--name', 'x', '--expires', '0']),
      runAdminCli(dataDir, ['token', 'create', ALICE.username, '--name', 'x', '--grant', 'team-a/*']),
      runAdminCli(dataDir, ['token', 'create', 'nobody', '--name', 'x']),
      runAdminCli(dataDir, ['token', 'create', ALICE.username, '--name', 'ci-pull']),
      runAdminCli(dataDir, ['token', 'revoke', ALICE.username, 'no-such-token']),
    ]);
    expect(results.map((result) => result.code)).toEqual([2, 2, 2, 1, 1, 1]);
    expect(results[3].stderr).toContain('no user nobody');
  });

  test(
    'no secret is in the logs, in token list, or in the table: only scrypt hashes',
    async () => {
      expect(secrets.length).toBeGreaterThanOrEqual(5);
      for (const args of [
        ['token', 'list', ALICE.username],
        ['token', 'list', ALICE.username, '--json'],
      ]) {
        const { stdout, stderr, code } = await runAdminCli(dataDir, args);
        expect(code).toBe(0);
        expect(stdout).toContain('ci-pull');
        for (const secret of secrets) expect(stdout + stderr).not.toContain(secret);
        expect(stdout).not.toContain('scrypt');
      }
      const { Items = [] } = await dynamo.send(new ScanCommand({ TableName: registry.config.tableName }));
      const stored = JSON.stringify(Items);
      const secretParts = secrets.map((secret) => secret.split('_').slice(2).join('_'));
      for (const part of secretParts) expect(stored).not.toContain(part);
      const tokenItems = Items.filter((item) => String(item.SK).startsWith('TOKEN#'));
      expect(tokenItems.length).toBe(secrets.length);
      for (const item of tokenItems) expect(item.secretHash).toMatch(/^scrypt\$/);
      const logs = logLines.join('\n');
      expect(logs).toContain('"operation":"token"');
      for (const part of secretParts) expect(logs).not.toContain(part);
    },
    SLOW_TEST_MS,
  );
});
