/**
 * Personal access tokens through the local deployed shape (REGISTRY_AUTH=cognito): the
 * self-service endpoint and the logins are the token function bundled for Lambda, reached
 * through the front door and API Gateway's routes as the CDK app makes them.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createPodman, toolFailure as failure, type Podman } from '../support/clients.js';
import { useDeployedShape } from '../support/deployed-shape.js';
import { writeImage } from '../support/oci-image.js';

const ADMIN = { username: 'admin', password: 'Admin-Password-1' };
const SLOW_TEST_MS = 5 * 60 * 1000;

describe('personal access tokens through the local deployed shape', () => {
  const deployed = useDeployedShape('dspat', { auth: 'cognito', admin: ADMIN });
  let podman: Podman;
  let source: string;

  beforeAll(async () => {
    source = join(deployed.workDir, 'source');
    await writeImage(source, { tag: 'v1', seed: 'deployed-shape/personal-tokens', layers: [{ sizeBytes: 64 * 1024 }] });
    podman = await createPodman(join(deployed.workDir, 'podman'));
  }, SLOW_TEST_MS);

  const basic = (username: string, password: string) => `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const selfService = (method: string, authorization: string, path = '', body?: unknown) =>
    deployed.http.fetch(`/token/personal-tokens${path}`, {
      method,
      headers: { authorization, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });

  it(
    'a user creates a token over HTTP, podman logs in and pushes with it within its grant, and it stops when revoked over HTTP',
    async () => {
      const created = await selfService('POST', basic(ADMIN.username, ADMIN.password), '', {
        name: 'podman',
        expiresDays: 1,
        grants: ['pat/*:pull,push'],
      });
      expect(created.status).toBe(201);
      const { id, secret } = (await created.json()) as { id: string; secret: string };
      const listed = await selfService('GET', basic(ADMIN.username, secret));
      expect(listed.status).toBe(200);
      expect(await listed.text()).not.toContain(secret);

      await podman.run(['login', '--tls-verify=false', '-u', ADMIN.username, '-p', secret, deployed.host]);
      await podman.pull(`oci:${source}:v1`);
      const local = (await podman.run(['images', '--format', '{{.ID}}'])).stdout.trim().split('\n')[0];
      await podman.push(local, `${deployed.host}/pat/app:v1`);
      // The admin may push anywhere; the token only where its grant says.
      expect((await failure(podman.push(local, `${deployed.host}/other/app:v1`))).stderr).toMatch(/denied|403/);
      expect((await selfService('POST', basic(ADMIN.username, secret), '', { name: 'child' })).status).toBe(403);

      expect((await selfService('DELETE', basic(ADMIN.username, ADMIN.password), `/${id}`)).status).toBe(204);
      expect((await failure(podman.push(local, `${deployed.host}/pat/app:v2`))).stderr).toMatch(/unauthorized|invalid username\/password/);
      expect(deployed.refusals).toEqual([]);
    },
    SLOW_TEST_MS,
  );
});
