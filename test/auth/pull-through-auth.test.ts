/**
 * Pull-through with authentication on (cognito-local, the token endpoint): pulling through needs
 * pull on the canonical cache name, granted by pattern (`hub/*`) or public; tokens are asked and
 * granted for canonical names (`hub/app` is granted as `hub/library/app`); without the grant the
 * registry asks the upstream nothing; the Docker mirror entry's challenge names its own realm.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalRegistry, type LocalRegistry } from '../../scripts/local/local-registry.js';
import { createSkopeo, toolFailure } from '../support/clients.js';
import { startCountingProxy, type CountingProxy } from '../support/counting-proxy.js';
import { blobDifferences } from '../support/layout-compare.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';
import { startUpstreamRegistry, type UpstreamRegistry } from '../support/upstream-registry.js';
import { adminCli } from './admin-cli.js';

const SLOW_MS = 5 * 60 * 1000;
const ADMIN = { username: 'admin', password: 'Admin-Password-1' };
const BOB = { username: 'bob', password: 'Bob-Password-1' };
const CAROL = { username: 'carol', password: 'Carol-Password-1' };

describe('pull-through with logins', () => {
  let workDir: string;
  let registry: LocalRegistry;
  let upstream: UpstreamRegistry;
  let proxy: CountingProxy;
  let image: WrittenImage;
  const host = () => new URL(registry.url).host;
  const source = () => join(workDir, 'source');

  beforeAll(async () => {
    workDir = join(tmpdir(), `pta-${randomUUID().slice(0, 8)}`);
    await mkdir(workDir, { recursive: true });
    registry = await startLocalRegistry({ dataDir: join(workDir, 'data'), port: 0, quiet: true, auth: 'cognito', admin: ADMIN, dockerMirrorPort: 0 });
    upstream = await startUpstreamRegistry({ dataDir: join(workDir, 'upstream') });
    proxy = await startCountingProxy({ target: upstream.url });
    image = await writeImage(source(), { tag: 'v1', seed: 'pull-through/auth', layers: [{ sizeBytes: 100_000, compression: 'none' }] });
    await upstream.push(source(), 'v1', 'library/app');
    const dataDir = join(workDir, 'data');
    await adminCli(dataDir, ['upstream', 'add', 'hub', '--url', proxy.url, '--prefix', 'hub', '--docker-hub']);
    await adminCli(dataDir, ['group', 'create', 'pullers']);
    await adminCli(dataDir, ['user', 'create', BOB.username, '--password', BOB.password, '--group', 'pullers']);
    await adminCli(dataDir, ['user', 'create', CAROL.username, '--password', CAROL.password]);
    await adminCli(dataDir, ['grant', 'pullers', 'hub/*', 'pull']);
  }, SLOW_MS);

  afterAll(async () => {
    await proxy?.stop();
    await upstream?.stop();
    await registry?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it('a user granted hub/* pulls hub/app:v1 (granted as hub/library/app), byte for byte', async () => {
    const skopeo = await createSkopeo(join(workDir, 'bob'));
    const pulled = join(workDir, 'pulled-bob');
    await skopeo.copy(`docker://${host()}/hub/app:v1`, `oci:${pulled}:v1`, ['--preserve-digests', '--src-creds', `${BOB.username}:${BOB.password}`]);
    expect(await blobDifferences(source(), pulled, [image.manifestDigest, image.configDigest, ...image.layerDigests])).toEqual([]);
    const token = await fetch(`${registry.url}/token?service=${host()}&scope=repository:hub/app:pull`, {
      headers: { authorization: `Basic ${Buffer.from(`${BOB.username}:${BOB.password}`).toString('base64')}` },
    });
    expect(((await token.json()) as { scope: string }).scope).toBe('repository:hub/library/app:pull');
  });

  it('a user without the grant is refused, and the upstream is not asked', async () => {
    proxy.reset();
    const skopeo = await createSkopeo(join(workDir, 'carol'));
    const failure = await toolFailure(
      skopeo.copy(`docker://${host()}/hub/library/other:v1`, `oci:${join(workDir, 'pulled-carol')}:v1`, [
        '--src-creds',
        `${CAROL.username}:${CAROL.password}`,
      ]),
    );
    expect(failure.stderr).toMatch(/denied|unauthorized/);
    expect(proxy.requests).toEqual([]);
  });

  it('public patterns work for anonymous pulls', async () => {
    await adminCli(join(workDir, 'data'), ['public', 'hub/*', 'on']);
    // Token requests read the access policy at most every 5 s (ACCESS_POLICY_CACHE_MS).
    await new Promise((resolve) => setTimeout(resolve, 5_500));
    const skopeo = await createSkopeo(join(workDir, 'anonymous'));
    await skopeo.copy(`docker://${host()}/hub/library/app:v1`, `oci:${join(workDir, 'pulled-anonymous')}:v1`);
  });

  it("the mirror entry's challenge names the mirror's own realm, whose tokens are for Docker Hub names", async () => {
    const response = await fetch(`${registry.dockerMirrorUrl}/v2/library/app/manifests/v1`);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain(`realm="${registry.dockerMirrorUrl}/token"`);
    expect(response.headers.get('www-authenticate')).toContain('scope="repository:hub/library/app:pull"');
    const token = await fetch(`${registry.dockerMirrorUrl}/token?service=${host()}&scope=repository:library/app:pull`);
    expect(((await token.json()) as { scope: string }).scope).toBe('repository:hub/library/app:pull');
  });
});
