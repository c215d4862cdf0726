/**
 * The admin CLI as an admin runs it: a child process against real stand-ins (DynamoDB Local and
 * cognito-local), found through the local-endpoints.json a running local registry publishes.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InitiateAuthCommand, type CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { verifyRobotSecret } from '../../registry/services/auth/robot-secrets.js';
import { AccessStore } from '../../registry/storage/access-store.js';
import { keys } from '../../registry/storage/keys.js';
import { RobotStore } from '../../registry/storage/robot-store.js';
import { TrustStore } from '../../registry/storage/trust-store.js';
import { writeLocalEndpoints } from '../../scripts/admin/targets.js';
import {
  ensureLocalUserPool,
  localCognitoClient,
  startCognitoStandIn,
  type CognitoStandIn,
  type LocalUserPool,
} from '../../scripts/local/cognito-stand-in.js';
import { ensureRegistryResources, startStandIns, type StandIns } from '../../scripts/local/stand-ins.js';
import { LOCAL_CREDENTIALS } from '../../scripts/local/local-credentials.js';

const CLI = resolve('scripts/registry-admin.ts');
const REGION = 'us-east-1';
const TABLE = 'registry';
const REGISTRY_URL = 'http://127.0.0.1:5999';

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

describe('registry-admin', () => {
  let dataDir: string;
  let standIns: StandIns;
  let cognitoStandIn: CognitoStandIn;
  let pool: LocalUserPool;
  let cognito: CognitoIdentityProviderClient;
  let dynamo: DynamoDBDocumentClient;
  let access: AccessStore;
  let robots: RobotStore;

  /** Runs the CLI against the local registry in dataDir. */
  function cli(args: string[], options: { stdin?: string; target?: string[] } = {}): Promise<CliResult> {
    const target = options.target ?? ['--local', '--data-dir', dataDir];
    return new Promise((resolveRun) => {
      const child = execFile(process.execPath, ['--import', 'tsx', CLI, ...args, ...target], { encoding: 'utf8' }, (error, stdout, stderr) =>
        resolveRun({ code: error ? Number(error.code) : 0, stdout, stderr }),
      );
      child.stdin?.end(options.stdin ?? '');
    });
  }

  async function succeeds(args: string[], options?: { stdin?: string }): Promise<string> {
    const result = await cli(args, options);
    expect(result, result.stderr).toMatchObject({ code: 0 });
    return result.stdout;
  }

  function login(username: string, password: string) {
    return cognito.send(
      new InitiateAuthCommand({
        AuthFlow: 'USER_PASSWORD_AUTH',
        ClientId: pool.clientId,
        AuthParameters: { USERNAME: username, PASSWORD: password },
      }),
    );
  }

  async function groupsInToken(username: string, password: string): Promise<unknown> {
    const { AuthenticationResult } = await login(username, password);
    const payload = (AuthenticationResult?.AccessToken ?? '').split('.')[1];
    return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))['cognito:groups'] ?? [];
  }

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'registry-admin-test-'));
    [standIns, cognitoStandIn] = await Promise.all([startStandIns({ dataDir }), startCognitoStandIn({ dataDir })]);
    const endpoints = { dynamoEndpoint: standIns.dynamoEndpoint, s3Endpoint: standIns.s3Endpoint };
    await ensureRegistryResources({ region: REGION, tableName: TABLE, bucketName: 'registry-blobs', ...endpoints });
    pool = await ensureLocalUserPool(cognitoStandIn.endpoint, dataDir);
    await writeLocalEndpoints(dataDir, {
      ...endpoints,
      cognitoEndpoint: cognitoStandIn.endpoint,
      userPoolId: pool.userPoolId,
      clientId: pool.clientId,
      tableName: TABLE,
      bucketName: 'registry-blobs',
      region: REGION,
      registryUrl: REGISTRY_URL,
    });
    cognito = localCognitoClient(cognitoStandIn.endpoint);
    dynamo = DynamoDBDocumentClient.from(new DynamoDBClient({ region: REGION, endpoint: standIns.dynamoEndpoint, credentials: LOCAL_CREDENTIALS }));
    access = new AccessStore(dynamo, TABLE);
    robots = new RobotStore(dynamo, TABLE);
  });

  afterAll(async () => {
    cognito?.destroy();
    dynamo?.destroy();
    await Promise.allSettled([standIns?.stop(), cognitoStandIn?.stop()]);
    await rm(dataDir, { recursive: true, force: true });
  });

  describe('users and groups', () => {
    it('creates a user in a group who can log in at once', async () => {
      await succeeds(['group', 'create', 'team-a', '--description', 'Team A']);
      const stdout = await succeeds(['user', 'create', 'alice', '--password', 'Alice-Password-1', '--group', 'team-a']);
      expect(stdout).not.toContain('Alice-Password-1');
      expect(await groupsInToken('alice', 'Alice-Password-1')).toEqual(['team-a']);
      expect(await succeeds(['user', 'groups', 'alice'])).toBe('team-a\n');
      const users = JSON.parse(await succeeds(['user', 'list', '--json'])) as { username: string; enabled: boolean }[];
      expect(users).toContainEqual(expect.objectContaining({ username: 'alice', enabled: true, status: 'CONFIRMED' }));
      const groups = JSON.parse(await succeeds(['group', 'list', '--json']));
      expect(groups).toContainEqual({ name: 'team-a', description: 'Team A' });
    });

    it('generates a password and shows it once', async () => {
      const stdout = await succeeds(['user', 'create', 'bob']);
      const password = /^Password: (\S+)$/m.exec(stdout)?.[1] ?? '';
      expect(password).toMatch(/^.{24}$/);
      expect((await login('bob', password)).AuthenticationResult?.AccessToken).toBeTruthy();
    });

    it('refuses bad or duplicate users and unknown groups, without leaving a half-made user', async () => {
      expect(await cli(['user', 'create', 'robot$ci'])).toMatchObject({ code: 2, stderr: expect.stringContaining('robot') });
      expect(await cli(['user', 'create', 'al:ice'])).toMatchObject({ code: 2 });
      expect(await cli(['user', 'create', 'alice'])).toMatchObject({ code: 1, stderr: expect.stringContaining('exists') });
      expect(await cli(['user', 'create', 'dave', '--group', 'no-such-group'])).toMatchObject({ code: 1 });
      expect(await cli(['user', 'groups', 'dave'])).toMatchObject({ code: 1, stderr: expect.stringContaining('no user dave') });
      expect(await cli(['group', 'create', 'team-a'])).toMatchObject({ code: 1, stderr: expect.stringContaining('exists') });
      expect(await cli(['user', 'disable', 'nobody'])).toMatchObject({ code: 1, stderr: 'registry-admin: no user nobody\n' });
    });

    it('disables and enables a user', async () => {
      await succeeds(['user', 'disable', 'alice']);
      await expect(login('alice', 'Alice-Password-1')).rejects.toMatchObject({ name: 'NotAuthorizedException' });
      await succeeds(['user', 'enable', 'alice']);
      expect((await login('alice', 'Alice-Password-1')).AuthenticationResult?.AccessToken).toBeTruthy();
    });

    it('sets a password from stdin, and moves users between groups', async () => {
      const result = await cli(['user', 'set-password', 'alice', '--password-stdin'], { stdin: 'Alice-Password-2\n' });
      expect(result.code).toBe(0);
      expect(result.stdout + result.stderr).not.toContain('Alice-Password-2');
      await expect(login('alice', 'Alice-Password-1')).rejects.toMatchObject({ name: 'NotAuthorizedException' });

      await succeeds(['group', 'create', 'team-b']);
      await succeeds(['group', 'add-user', 'team-b', 'alice']);
      expect(await groupsInToken('alice', 'Alice-Password-2')).toEqual(['team-a', 'team-b']);
      await succeeds(['group', 'remove-user', 'team-a', 'alice']);
      expect(await groupsInToken('alice', 'Alice-Password-2')).toEqual(['team-b']);
    });
  });

  describe('permissions', () => {
    it('grants, replaces and revokes group grants', async () => {
      await succeeds(['grant', 'team-a', 'team-a/*', 'pull,push']);
      await succeeds(['grant', 'team-b', 'team-b/app', 'pull']);
      await succeeds(['grant', 'team-b', 'team-b/app', 'pull,delete']);
      expect((await access.read()).groupGrants).toEqual(
        expect.arrayContaining([
          { group: 'team-a', pattern: 'team-a/*', actions: ['pull', 'push'] },
          { group: 'team-b', pattern: 'team-b/app', actions: ['pull', 'delete'] },
        ]),
      );
      await succeeds(['revoke', 'team-b', 'team-b/app']);
      expect((await access.read()).groupGrants).toEqual([{ group: 'team-a', pattern: 'team-a/*', actions: ['pull', 'push'] }]);
      expect(await cli(['revoke', 'team-b', 'team-b/app'])).toMatchObject({ code: 1 });
    });

    it('refuses invalid patterns, unknown actions and unknown groups', async () => {
      const [badCase, badWildcard, badAction, unknownGroup, badState] = await Promise.all([
        cli(['grant', 'team-a', 'Team-A/*', 'pull']),
        cli(['grant', 'team-a', 'team-a/*/x', 'pull']),
        cli(['grant', 'team-a', 'team-a/*', 'pull,write']),
        cli(['grant', 'team-c', 'team-c/*', 'pull']),
        cli(['public', 'public/*', 'maybe']),
      ]);
      expect(badCase).toMatchObject({ code: 2 });
      expect(badWildcard).toMatchObject({ code: 2 });
      expect(badAction).toMatchObject({ code: 2, stderr: expect.stringContaining('write') });
      expect(unknownGroup).toMatchObject({ code: 1, stderr: expect.stringContaining('team-c') });
      expect(badState).toMatchObject({ code: 2 });
    });

    it('opens and closes patterns to anonymous pulls, and lists the policy', async () => {
      await succeeds(['public', 'public/*', 'on']);
      expect((await access.read()).publicPatterns).toEqual(['public/*']);
      const policy = JSON.parse(await succeeds(['access', 'list', '--json']));
      expect(policy).toEqual({
        groupGrants: [{ group: 'team-a', pattern: 'team-a/*', actions: ['pull', 'push'] }],
        publicPatterns: ['public/*'],
      });
      const text = await succeeds(['access', 'list']);
      expect(text).toMatch(/team-a\s+team-a\/\*\s+pull,push/);
      expect(text).toContain('public/*');
      await succeeds(['public', 'public/*', 'off']);
      expect((await access.read()).publicPatterns).toEqual([]);
      expect(await cli(['public', 'public/*', 'off'])).toMatchObject({ code: 1 });
    });
  });

  describe('robots', () => {
    let secret: string;

    it('creates a robot whose secret is shown once and stored only as a hash', async () => {
      const created = JSON.parse(
        await succeeds(['robot', 'create', 'ci-team-a', '--grant', 'team-a/*:pull,push', '--grant', 'shared/base:pull', '--expires', '30', '--json']),
      );
      secret = created.secret;
      expect(created).toMatchObject({
        username: 'robot$ci-team-a',
        grants: [
          { pattern: 'team-a/*', actions: ['pull', 'push'] },
          { pattern: 'shared/base', actions: ['pull'] },
        ],
      });
      const days = (Date.parse(created.validUntil) - Date.now()) / 86_400_000;
      expect(days).toBeGreaterThan(29.9);
      expect(days).toBeLessThanOrEqual(30);

      const stored = await robots.get('ci-team-a');
      expect(stored).toMatchObject({ name: 'ci-team-a', revoked: false });
      expect(await verifyRobotSecret(secret, stored!.secretHash)).toBe(true);
      expect(await verifyRobotSecret(`${secret}x`, stored!.secretHash)).toBe(false);
      const { Item } = await dynamo.send(new GetCommand({ TableName: TABLE, Key: keys.robot('ci-team-a') }));
      expect(JSON.stringify(Item)).not.toContain(secret);
    });

    it('prints the secret and a login hint in text mode', async () => {
      const result = await cli(['robot', 'create', 'ci-team-b', '--grant', 'team-b/*:pull', '--expires', '1', '--description', 'nightly']);
      expect(result.code).toBe(0);
      const shown = /^Secret: +(\S+)$/m.exec(result.stdout)?.[1] ?? '';
      expect(await verifyRobotSecret(shown, (await robots.get('ci-team-b'))!.secretHash)).toBe(true);
      expect(result.stdout).toContain('Username: robot$ci-team-b');
      expect(result.stderr).toContain("docker login -u 'robot$ci-team-b' --password-stdin 127.0.0.1:5999");
      expect(result.stderr).not.toContain(shown);
    });

    it('refuses robots without grants or expiry, with bad names, and duplicates', async () => {
      const refusedUsages = await Promise.all([
        cli(['robot', 'create', 'x', '--expires', '30']),
        cli(['robot', 'create', 'x', '--grant', 'a/*:pull']),
        cli(['robot', 'create', 'x', '--grant', 'a/*:pull', '--expires', '3651']),
        cli(['robot', 'create', 'x', '--grant', 'a/*:pull', '--expires', '0']),
        cli(['robot', 'create', 'x', '--grant', 'a/*', '--expires', '3']),
        cli(['robot', 'create', 'CI', '--grant', 'a/*:pull', '--expires', '3']),
      ]);
      for (const refused of refusedUsages) expect(refused).toMatchObject({ code: 2 });
      expect(await cli(['robot', 'create', 'ci-team-a', '--grant', 'a/*:pull', '--expires', '3'])).toMatchObject({
        code: 1,
        stderr: expect.stringContaining('exists'),
      });
    });

    it('lists robots without hashes or secrets, and revokes them', async () => {
      await succeeds(['robot', 'revoke', 'robot$ci-team-a']);
      expect(await robots.get('ci-team-a')).toMatchObject({ revoked: true });
      expect(await cli(['robot', 'revoke', 'nobody'])).toMatchObject({ code: 1 });

      for (const args of [
        ['robot', 'list'],
        ['robot', 'list', '--json'],
      ]) {
        const stdout = await succeeds(args);
        expect(stdout).toContain('robot$ci-team-a');
        expect(stdout).toContain('robot$ci-team-b');
        expect(stdout).not.toContain('scrypt');
        expect(stdout).not.toContain(secret);
      }
      const listed = JSON.parse(await succeeds(['robot', 'list', '--json'])) as { username: string; status: string }[];
      expect(listed.map(({ username, status }) => ({ username, status }))).toEqual([
        { username: 'robot$ci-team-a', status: 'revoked' },
        { username: 'robot$ci-team-b', status: 'active' },
      ]);
    });
  });

  describe('OIDC workload trusts', () => {
    const GITHUB = 'https://token.actions.githubusercontent.com';
    const add = (name: string, extra: string[] = [], target?: string[]) =>
      cli(['trust', 'add', name, '--issuer', GITHUB, '--audience', 'registry.example', '--claim', 'repository=org/app', ...extra], { target });

    it('adds a trust with claim conditions and grants, lists it and removes it', async () => {
      const added = await add('gh-app', ['--claim', 'ref=refs/heads/*', '--grant', 'ci/app/*:pull,push', '--max-lifetime', '600']);
      expect(added, added.stderr).toMatchObject({ code: 0 });
      expect(added.stderr).toContain("docker login -u 'trust$gh-app' --password-stdin 127.0.0.1:5999");
      expect(await new TrustStore(dynamo, TABLE).list()).toEqual([
        expect.objectContaining({
          name: 'gh-app',
          issuer: GITHUB,
          audience: 'registry.example',
          claims: [
            { claim: 'repository', value: 'org/app' },
            { claim: 'ref', value: 'refs/heads/*' },
          ],
          grants: [{ pattern: 'ci/app/*', actions: ['pull', 'push'] }],
          maxLifetimeSeconds: 600,
        }),
      ]);
      expect(await succeeds(['trust', 'list'])).toMatch(
        /trust\$gh-app\s+https:\/\/token\.actions\.githubusercontent\.com\s+registry\.example\s+repository=org\/app ref=refs\/heads\/\*\s+ci\/app\/\*:pull,push\s+600/,
      );
      expect(JSON.parse(await succeeds(['trust', 'list', '--json']))).toEqual([
        expect.objectContaining({ username: 'trust$gh-app', maxLifetimeSeconds: 600 }),
      ]);
      expect(await add('gh-app', ['--grant', 'ci/app/*:pull'])).toMatchObject({ code: 1, stderr: expect.stringContaining('exists already') });
      await succeeds(['trust', 'remove', 'trust$gh-app']);
      expect(await new TrustStore(dynamo, TABLE).list()).toEqual([]);
      expect(await cli(['trust', 'remove', 'gh-app'])).toMatchObject({ code: 1, stderr: expect.stringContaining('no trust gh-app') });
    });

    it('defaults the lifetime to 900 s', async () => {
      await add('gh-default', ['--grant', 'ci/app/*:pull']);
      expect((await new TrustStore(dynamo, TABLE).list()).find((trust) => trust.name === 'gh-default')?.maxLifetimeSeconds).toBe(900);
      await succeeds(['trust', 'remove', 'gh-default']);
    });

    it('refuses admin grants, trusts without claim conditions, catch-all claims, bad names and lifetimes', async () => {
      const refusals = await Promise.all([
        add('x', ['--grant', 'ci/*:admin']),
        cli(['trust', 'add', 'x', '--issuer', GITHUB, '--audience', 'a', '--grant', 'ci/*:pull']),
        add('x', ['--claim', 'sub=*', '--grant', 'ci/*:pull']),
        add('x', ['--claim', 'novalue', '--grant', 'ci/*:pull']),
        add('x'),
        add('X Y', ['--grant', 'ci/*:pull']),
        add('x', ['--grant', 'ci/*:pull', '--max-lifetime', '30']),
        add('x', ['--grant', 'ci/*:pull', '--max-lifetime', '3601']),
        cli(['trust', 'add', 'x', '--issuer', GITHUB, '--claim', 'a=b', '--grant', 'ci/*:pull']),
        cli(['trust', 'add', 'x', '--issuer', 'ftp://example.com', '--audience', 'a', '--claim', 'a=b', '--grant', 'ci/*:pull']),
        cli(['trust', 'add', 'x', '--issuer', 'http://idp.example.com', '--audience', 'a', '--claim', 'a=b', '--grant', 'ci/*:pull']),
      ]);
      for (const refusal of refusals) expect(refusal).toMatchObject({ code: 2 });
      expect(refusals[0].stderr).toContain('never admin');
      expect(refusals[1].stderr).toContain('at least one --claim');
      expect(await new TrustStore(dynamo, TABLE).list()).toEqual([]);
    });

    it('accepts a loopback http issuer for the local registry only', async () => {
      const local = await cli([
        'trust',
        'add',
        'local-ci',
        '--issuer',
        'http://127.0.0.1:8999',
        '--audience',
        'a',
        '--claim',
        'a=b',
        '--grant',
        'ci/*:pull',
      ]);
      expect(local, local.stderr).toMatchObject({ code: 0 });
      await succeeds(['trust', 'remove', 'local-ci']);
      // Refused before anything is sent to AWS.
      const deployed = await cli(
        ['trust', 'add', 'aws-ci', '--issuer', 'http://127.0.0.1:8999', '--audience', 'a', '--claim', 'a=b', '--grant', 'ci/*:pull'],
        {
          target: ['--table-name', 'registry', '--region', REGION],
        },
      );
      expect(deployed).toMatchObject({ code: 2, stderr: expect.stringContaining('must use https') });
    });
  });

  describe('targets and usage', () => {
    it('needs a target and refuses options a command does not take', async () => {
      expect(await cli(['user', 'list'], { target: [] })).toMatchObject({ code: 2, stderr: expect.stringContaining('--local') });
      expect(await cli(['user', 'list', '--grant', 'x'])).toMatchObject({ code: 2, stderr: expect.stringContaining('--grant') });
      expect(await cli(['user', 'create'])).toMatchObject({ code: 2, stderr: expect.stringContaining('usage') });
      expect(await cli(['--help'], { target: [] })).toMatchObject({ code: 0, stdout: expect.stringContaining('robot create') });
    });

    it('recognises a stale endpoints file and an unreachable registry without a stack trace', async () => {
      const staleDir = await mkdtemp(join(tmpdir(), 'registry-admin-stale-'));
      try {
        const exited = spawn(process.execPath, ['-e', '']);
        await once(exited, 'exit');
        await writeLocalEndpoints(staleDir, {
          dynamoEndpoint: 'http://127.0.0.1:9',
          s3Endpoint: 'http://127.0.0.1:9',
          tableName: TABLE,
          bucketName: 'registry-blobs',
          region: REGION,
          pid: exited.pid,
        });
        const stale = await cli(['access', 'list'], { target: ['--local', '--data-dir', staleDir] });
        expect(stale).toMatchObject({ code: 1, stderr: expect.stringContaining('no longer running') });

        await writeLocalEndpoints(staleDir, {
          dynamoEndpoint: 'http://127.0.0.1:9',
          s3Endpoint: '',
          bucketName: 'registry-blobs',
          tableName: TABLE,
          region: REGION,
        });
        const unreachable = await cli(['access', 'list'], { target: ['--local', '--data-dir', staleDir] });
        expect(unreachable.code).toBe(1);
        expect(unreachable.stderr).toContain('cannot reach');
        expect(unreachable.stderr).not.toMatch(/^\s+at /m);

        const withoutAuth = await cli(['user', 'list'], { target: ['--local', '--data-dir', staleDir] });
        expect(withoutAuth).toMatchObject({ code: 1, stderr: expect.stringContaining('REGISTRY_AUTH=cognito') });
      } finally {
        await rm(staleDir, { recursive: true, force: true });
      }
    });
  });
});
