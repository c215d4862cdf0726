/**
 * Logins through the local deployed shape with REGISTRY_AUTH=cognito: the token endpoint is the
 * token function bundled for Lambda (functions/token.ts) behind the same front door and API
 * Gateway emulator, its signing key given through the environment contract, its user pool the
 * cognito-local stand-in. skopeo logs in, pushes and pulls; a wrong password and anonymous pushes
 * are refused; `npm run doctor --user` runs its real login check.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createSkopeo, toolFailure as failure, type Skopeo } from '../support/clients.js';
import { useDeployedShape } from '../support/deployed-shape.js';
import { doctor } from '../support/doctor.js';
import { blobDifferences, imageBlobs, pulledManifestDigest } from '../support/layout-compare.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';

const ADMIN = { username: 'admin', password: 'Admin-Password-1' };

describe('logins through the local deployed shape', () => {
  const deployed = useDeployedShape('dsl', { auth: 'cognito', admin: ADMIN });
  let skopeo: Skopeo;
  let source: string;
  let image: WrittenImage;

  beforeAll(async () => {
    source = join(deployed.workDir, 'source');
    skopeo = await createSkopeo(join(deployed.workDir, 'skopeo'));
    image = await writeImage(source, { tag: 'v1', seed: 'deployed-shape/login', layers: [{ sizeBytes: 64 * 1024 }] });
  });

  const login = (username: string, password: string) => skopeo.run(['login', '--tls-verify=false', '-u', username, '-p', password, deployed.host]);
  const ref = (name: string) => `docker://${deployed.host}/${name}`;

  it('sends anonymous clients to the token realm on the one host', async () => {
    const response = await deployed.http.fetch('/v2/');
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(`Bearer realm="${deployed.shape.url}/token",service="${deployed.host}"`);
    const push = await failure(skopeo.copy(`oci:${source}:v1`, ref('login/app:v1')));
    // An anonymous token carries no push rights.
    expect(push.stderr).toMatch(/requested access to the resource is denied/);
  });

  it('refuses a wrong password at the token function', async () => {
    expect((await failure(login(ADMIN.username, 'Wrong-Password-1'))).stderr).toMatch(/invalid username\/password/);
    expect((await failure(login('nobody', 'Wrong-Password-1'))).stderr).toMatch(/invalid username\/password/);
  });

  it('skopeo logs in as the admin, pushes and pulls the image back intact', async () => {
    const coldStarts = deployed.shape.functions.tokenEndpoint!.coldStarts();
    await login(ADMIN.username, ADMIN.password);
    await skopeo.copy(`oci:${source}:v1`, ref('login/app:v1'), ['--preserve-digests']);
    const pulled = join(deployed.workDir, 'pulled');
    await skopeo.copy(ref('login/app:v1'), `oci:${pulled}:v1`, ['--preserve-digests']);
    expect(await pulledManifestDigest(pulled, 'v1')).toBe(image.manifestDigest);
    expect(await blobDifferences(source, pulled, imageBlobs(image))).toEqual([]);
    // The tokens came from the bundled token function, warm from the refusals before.
    expect(deployed.shape.functions.tokenEndpoint!.coldStarts()).toBe(coldStarts);
    expect(coldStarts).toBeGreaterThan(0);
  });

  it('npm run doctor --user runs its real login and token check, and every check passes', async () => {
    const { code, lines } = await doctor([deployed.shape.url, '--user', ADMIN.username], { ...process.env, REGISTRY_PASSWORD: ADMIN.password });
    expect(code).toBe(0);
    expect(lines[0]).toMatch(/^PASS {2}login and token flow: token login as admin; GET \/v2\/ answers 200 with the token/);
    expect(lines.filter((line) => line.startsWith('FAIL'))).toEqual([]);
    expect(lines.find((line) => line.includes('hosts of the URLs'))).toMatch(/token realm, upload Location, blob Location name 127\.0\.0\.1:/);
  });
});
