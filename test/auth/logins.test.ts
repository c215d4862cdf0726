/**
 * Team logins end to end: the local registry with authentication on (cognito-local, the token
 * endpoint, per-request authorization), set up with the admin CLI, driven by real clients.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startLocalRegistry, type LocalRegistry } from '../../scripts/local/local-registry.js';
import { createPodman, createSkopeo, toolFailure as failure, type Podman, type Skopeo } from '../support/clients.js';
import { blobDifferences, imageBlobs, pulledManifestDigest } from '../support/layout-compare.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';
import { adminCli } from './admin-cli.js';

const SLOW_TEST_MS = 5 * 60 * 1000;
const MiB = 1024 * 1024;
const ADMIN = { username: 'admin', password: 'Admin-Password-1' };
const ALICE = { username: 'alice', password: 'Alice-Password-1' };
/** How containers/image reports a 403: a DENIED error body, or the bare status of a HEAD. */
const REFUSED = /denied: (user|robot) \S+ may not (pull|push|delete) |403 \(Forbidden\)/;
/**
 * An anonymous caller is sent to log in (401 with error="insufficient_scope"), never told DENIED;
 * containers/image words that refusal itself.
 */
const ANONYMOUS_REFUSED = /denied: requested access to the resource is denied|unauthorized: authentication required/;
/** How `login` reports a 401 from the token endpoint. */
const LOGIN_REFUSED = /invalid username\/password/;

describe('logins against the local registry with authentication', () => {
  let workDir: string;
  let dataDir: string;
  let registry: LocalRegistry;
  let source: string;
  let image: WrittenImage;
  let robotSecret: string;

  const host = () => new URL(registry.url).host;
  const ref = (repositoryAndTag: string) => `docker://${host()}/${repositoryAndTag}`;
  const login = (client: Skopeo | Podman, username: string, password: string) =>
    client.run(['login', '--tls-verify=false', '-u', username, '-p', password, host()]);

  beforeAll(async () => {
    // Short: podman limits its run root to 50 characters.
    workDir = join(tmpdir(), `auth-${randomUUID().slice(0, 8)}`);
    dataDir = join(workDir, 'data');
    await mkdir(join(workDir, 'pulled'), { recursive: true });
    registry = await startLocalRegistry({ dataDir, port: 0, quiet: true, auth: 'cognito', admin: ADMIN });

    source = join(workDir, 'source');
    image = await writeImage(source, {
      tag: 'v1',
      seed: 'auth/logins',
      layers: [{ sizeBytes: 64 * 1024 }, { sizeBytes: 3 * MiB }],
    });

    await adminCli(dataDir, ['group', 'create', 'team-a']);
    await adminCli(dataDir, ['user', 'create', ALICE.username, '--password', ALICE.password, '--group', 'team-a']);
    await adminCli(dataDir, ['grant', 'team-a', 'team-a/*', 'pull,push']);
    await adminCli(dataDir, ['public', 'public/*', 'on']);
    const robot = JSON.parse(
      await adminCli(dataDir, ['robot', 'create', 'ci-builds', '--grant', 'builds/*:pull,push', '--expires', '7', '--json']),
    ) as { secret: string };
    robotSecret = robot.secret;

    // Content the tests read: pushed by the admin, who may push anywhere.
    const admin = await createSkopeo(join(workDir, 'admin-skopeo'));
    const adminCreds = `${ADMIN.username}:${ADMIN.password}`;
    for (const repository of ['public/base', 'team-b/secret']) {
      await admin.copy(`oci:${source}:v1`, ref(`${repository}:v1`), ['--preserve-digests', '--dest-creds', adminCreds]);
    }
  }, SLOW_TEST_MS);

  afterAll(async () => {
    await registry?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test(
    'skopeo login as a team member: push and pull byte-exactly inside the namespace, refused outside',
    async () => {
      const skopeo = await createSkopeo(join(workDir, 'alice-skopeo'));
      await login(skopeo, ALICE.username, ALICE.password);

      await skopeo.copy(`oci:${source}:v1`, ref('team-a/app:v1'), ['--preserve-digests']);
      const pulled = join(workDir, 'pulled', 'alice');
      await skopeo.copy(ref('team-a/app:v1'), `oci:${pulled}:v1`, ['--preserve-digests']);
      expect(await pulledManifestDigest(pulled, 'v1')).toBe(image.manifestDigest);
      expect(await blobDifferences(source, pulled, imageBlobs(image))).toEqual([]);

      const push = await failure(skopeo.copy(`oci:${source}:v1`, ref('team-b/app:v1'), ['--preserve-digests']));
      expect(push.stderr).toMatch(REFUSED);
      const pull = await failure(skopeo.copy(ref('team-b/secret:v1'), `oci:${join(workDir, 'pulled', 'stolen')}:v1`));
      // A GET carries the DENIED body, and skopeo shows what is missing; a HEAD (the push's first request) cannot.
      expect(pull.stderr).toContain('denied: user alice may not pull team-b/secret; an admin grants it');
    },
    SLOW_TEST_MS,
  );

  test(
    'skopeo login refuses a wrong password and a disabled user',
    async () => {
      const skopeo = await createSkopeo(join(workDir, 'refused-skopeo'));
      expect((await failure(login(skopeo, ALICE.username, 'wrong'))).stderr).toMatch(LOGIN_REFUSED);
      expect((await failure(login(skopeo, 'nobody', 'wrong'))).stderr).toMatch(LOGIN_REFUSED);

      await adminCli(dataDir, ['user', 'create', 'bob', '--password', 'Bob-Password-1']);
      await login(skopeo, 'bob', 'Bob-Password-1');
      await adminCli(dataDir, ['user', 'disable', 'bob']);
      expect((await failure(login(skopeo, 'bob', 'Bob-Password-1'))).stderr).toMatch(LOGIN_REFUSED);
    },
    SLOW_TEST_MS,
  );

  test(
    'podman login as a team member: pull, push inside the namespace, refused outside',
    async () => {
      const podman = await createPodman(join(workDir, 'podman'));
      try {
        await login(podman, ALICE.username, ALICE.password);
        const seed = `${host()}/team-a/seed:v1`;
        const skopeo = await createSkopeo(join(workDir, 'seed-skopeo'));
        await skopeo.copy(`oci:${source}:v1`, `docker://${seed}`, ['--preserve-digests', '--dest-creds', `${ALICE.username}:${ALICE.password}`]);

        await podman.pull(seed);
        const inspected = await podman.inspectImage(seed);
        expect(inspected.Digest).toBe(image.manifestDigest);
        expect(inspected.RootFS.Layers).toEqual(image.diffIds);

        await podman.push(seed, `${host()}/team-a/podman-copy:v1`);
        const copied = await skopeo.inspect(ref('team-a/podman-copy:v1'), ['--creds', `${ALICE.username}:${ALICE.password}`]);
        expect(JSON.parse(copied.stdout).Layers).toHaveLength(image.layerDigests.length);

        const refused = await failure(podman.push(seed, `${host()}/team-b/podman:v1`));
        expect(refused.stderr).toMatch(REFUSED);
      } finally {
        await podman.destroy();
      }
    },
    SLOW_TEST_MS,
  );

  test(
    'a robot account pushes to its namespace, is refused elsewhere, and cannot log in once revoked',
    async () => {
      const skopeo = await createSkopeo(join(workDir, 'robot-skopeo'));
      await login(skopeo, 'robot$ci-builds', robotSecret);

      await skopeo.copy(`oci:${source}:v1`, ref('builds/app:v1'), ['--preserve-digests']);
      const pulled = join(workDir, 'pulled', 'robot');
      await skopeo.copy(ref('builds/app:v1'), `oci:${pulled}:v1`, ['--preserve-digests']);
      expect(await blobDifferences(source, pulled, imageBlobs(image))).toEqual([]);
      expect((await failure(skopeo.copy(`oci:${source}:v1`, ref('team-a/robot:v1'), ['--preserve-digests']))).stderr).toMatch(REFUSED);

      expect((await failure(login(skopeo, 'robot$ci-builds', `${robotSecret}x`))).stderr).toMatch(LOGIN_REFUSED);
      await adminCli(dataDir, ['robot', 'revoke', 'ci-builds']);
      // The stored login is of no use any more either: every token request checks the robot.
      const stale = await failure(skopeo.copy(`oci:${source}:v1`, ref('builds/after-revoke:v1'), ['--preserve-digests']));
      expect(stale.stderr).toMatch(/unauthorized|invalid username\/password/);
      const fresh = await createSkopeo(join(workDir, 'revoked-skopeo'));
      expect((await failure(login(fresh, 'robot$ci-builds', robotSecret))).stderr).toMatch(LOGIN_REFUSED);
    },
    SLOW_TEST_MS,
  );

  test(
    'anyone may pull a public namespace without logging in, and nothing else',
    async () => {
      const anonymous = await createSkopeo(join(workDir, 'anonymous-skopeo'));
      const pulled = join(workDir, 'pulled', 'anonymous');
      await anonymous.copy(ref('public/base:v1'), `oci:${pulled}:v1`, ['--preserve-digests']);
      expect(await pulledManifestDigest(pulled, 'v1')).toBe(image.manifestDigest);
      expect(await blobDifferences(source, pulled, imageBlobs(image))).toEqual([]);

      const push = await failure(anonymous.copy(`oci:${source}:v1`, ref('public/mine:v1'), ['--preserve-digests']));
      expect(push.stderr).toMatch(ANONYMOUS_REFUSED);
      const pull = await failure(anonymous.copy(ref('team-b/secret:v1'), `oci:${join(workDir, 'pulled', 'anonymous-private')}:v1`));
      expect(pull.stderr).toMatch(ANONYMOUS_REFUSED);
    },
    SLOW_TEST_MS,
  );

  test(
    'the catalog lists only the repositories the token holder may pull',
    async () => {
      await adminCli(dataDir, ['user', 'create', 'carol', '--password', 'Carol-Password-1']);
      // Anonymous, without any token, as `curl /v2/_catalog` asks: what anyone may pull.
      const bare = await fetch(`${registry.url}/v2/_catalog`);
      expect(bare.status).toBe(200);
      expect(await bare.json()).toEqual({ repositories: ['public/base'] });
      const challenge = await fetch(`${registry.url}/v2/_catalog`, { headers: { authorization: 'Bearer not-a-token' } });
      expect(challenge.status).toBe(401);
      const params = Object.fromEntries(
        [...(challenge.headers.get('www-authenticate') ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((match) => [match[1], match[2]]),
      );
      expect(params).toMatchObject({ realm: `${registry.url}/token`, scope: 'registry:catalog:*' });

      async function catalogAs(credentials?: { username: string; password: string }): Promise<string[]> {
        const tokenUrl = new URL(params.realm);
        tokenUrl.searchParams.set('service', params.service);
        tokenUrl.searchParams.set('scope', params.scope);
        const headers: Record<string, string> = credentials
          ? { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` }
          : {};
        const tokenResponse = await fetch(tokenUrl, { headers });
        expect(tokenResponse.status).toBe(200);
        const { token } = (await tokenResponse.json()) as { token: string };
        const catalog = await fetch(`${registry.url}/v2/_catalog`, { headers: { authorization: `Bearer ${token}` } });
        expect(catalog.status).toBe(200);
        return ((await catalog.json()) as { repositories: string[] }).repositories;
      }

      const everything = await catalogAs(ADMIN);
      expect(everything).toEqual(expect.arrayContaining(['public/base', 'team-a/app', 'team-b/secret']));
      const alice = await catalogAs(ALICE);
      expect(alice).toEqual(everything.filter((name) => name.startsWith('team-a/') || name.startsWith('public/')));
      expect(await catalogAs({ username: 'carol', password: 'Carol-Password-1' })).toEqual(['public/base']);

      // With no public pattern there is nothing to list without a login: the challenge again.
      await adminCli(dataDir, ['public', 'public/*', 'off']);
      const closed = await fetch(`${registry.url}/v2/_catalog`);
      expect(closed.status).toBe(401);
      expect(closed.headers.get('www-authenticate')).toContain('scope="registry:catalog:*"');
    },
    SLOW_TEST_MS,
  );
});
