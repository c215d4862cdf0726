/**
 * CI without stored secrets, end to end: the local registry with authentication, a trust added with
 * the admin CLI, a loopback OIDC provider minting the job's ID token, and skopeo and podman logging
 * in as `trust$<name>` with it, pushing inside the trust's grants and refused outside them.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { jsonLogger } from '../../registry/support/logger.js';
import { startLocalRegistry, type LocalRegistry } from '../../scripts/local/local-registry.js';
import { createPodman, createSkopeo, toolFailure as failure } from '../support/clients.js';
import { startOidcProvider, type OidcProvider } from '../support/oidc-provider.js';
import { writeImage } from '../support/oci-image.js';
import { adminCli } from './admin-cli.js';

const SLOW_TEST_MS = 5 * 60 * 1000;
const ADMIN = { username: 'admin', password: 'Admin-Password-1' };
const AUDIENCE = 'registry.local';
/** The claims GitHub Actions puts in a job's ID token, for a push to main of org/app. */
const JOB = { sub: 'repo:org/app:ref:refs/heads/main', repository: 'org/app', ref: 'refs/heads/main', aud: AUDIENCE };
const LOGIN_REFUSED = /invalid username\/password/;

describe('OIDC workload logins against the local registry', () => {
  let workDir: string;
  let dataDir: string;
  let registry: LocalRegistry;
  let provider: OidcProvider;
  let source: string;
  const logs: string[] = [];
  const host = () => new URL(registry.url).host;

  beforeAll(async () => {
    workDir = join(tmpdir(), `wl-${randomUUID().slice(0, 8)}`);
    dataDir = join(workDir, 'data');
    await mkdir(workDir, { recursive: true });
    provider = await startOidcProvider();
    registry = await startLocalRegistry({ dataDir, port: 0, auth: 'cognito', admin: ADMIN, logger: jsonLogger((line) => logs.push(line)) });
    source = join(workDir, 'source');
    await writeImage(source, { tag: 'v1', seed: 'auth/workload', layers: [{ sizeBytes: 64 * 1024 }] });
    await adminCli(dataDir, [
      'trust',
      'add',
      'ci-app',
      '--issuer',
      provider.issuer,
      '--audience',
      AUDIENCE,
      '--claim',
      'repository=org/app',
      '--claim',
      'ref=refs/heads/*',
      '--grant',
      'ci/app/*:pull,push',
    ]);
  }, SLOW_TEST_MS);

  afterAll(async () => {
    await registry?.stop();
    await provider?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test(
    'skopeo logs in with the ID token, pushes to the granted namespace and is refused elsewhere',
    async () => {
      const skopeo = await createSkopeo(join(workDir, 'skopeo'));
      const idToken = provider.mint(JOB);
      await skopeo.run(['login', '--tls-verify=false', '-u', 'trust$ci-app', '-p', idToken, host()]);
      await skopeo.copy(`oci:${source}:v1`, `docker://${host()}/ci/app/web:v1`, ['--preserve-digests']);
      const inspected = JSON.parse((await skopeo.inspect(`docker://${host()}/ci/app/web:v1`)).stdout) as { Layers: string[] };
      expect(inspected.Layers).toHaveLength(1);

      const elsewhere = await failure(skopeo.copy(`oci:${source}:v1`, `docker://${host()}/team-b/app:v1`, ['--preserve-digests']));
      expect(elsewhere.stderr).toMatch(/denied: trust ci-app may not (push|pull) team-b\/app|403 \(Forbidden\)/);

      // Another repository's job, or another branch's, gets no login at all.
      for (const claims of [
        { ...JOB, repository: 'org/other' },
        { ...JOB, ref: 'refs/tags/v1' },
      ]) {
        const refused = await failure(skopeo.run(['login', '--tls-verify=false', '-u', 'trust$ci-app', '-p', provider.mint(claims), host()]));
        expect(refused.stderr).toMatch(LOGIN_REFUSED);
      }
      expect(logs.join('\n')).not.toContain(idToken.split('.')[2]);
      expect(logs.filter((line) => line.includes('workload login refused')).map((line) => JSON.parse(line).reason)).toEqual([
        'claim-mismatch',
        'claim-mismatch',
      ]);
    },
    SLOW_TEST_MS,
  );

  test(
    'podman logs in with an ES256 ID token and pushes to the granted namespace, refused elsewhere',
    async () => {
      const podman = await createPodman(join(workDir, 'podman'));
      try {
        const seed = `${host()}/ci/app/web:v1`;
        await podman.run(['login', '--tls-verify=false', '-u', 'trust$ci-app', '-p', provider.mint(JOB, { alg: 'ES256' }), host()]);
        await podman.pull(seed);
        await podman.push(seed, `${host()}/ci/app/podman:v1`);
        const refused = await failure(podman.push(seed, `${host()}/team-b/podman:v1`));
        expect(refused.stderr).toMatch(/denied: trust ci-app may not push team-b\/podman|403 \(Forbidden\)/);
      } finally {
        await podman.destroy();
      }
    },
    SLOW_TEST_MS,
  );
});
