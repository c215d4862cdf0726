/**
 * OIDC workload logins through the local deployed shape: the bundled token function, configured
 * from the environment the CDK writes, verifies a job's ID token from an https issuer (a loopback
 * provider with a self-signed certificate the function trusts through NODE_EXTRA_CA_CERTS); skopeo
 * logs in as the trust and pushes inside its grants only. The deployed function refuses a plain-http
 * issuer even on loopback, which only the local registry allows.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCli } from '../auth/admin-cli.js';
import { createSkopeo, toolFailure as failure, type Skopeo } from '../support/clients.js';
import { useDeployedShape } from '../support/deployed-shape.js';
import { writeImage } from '../support/oci-image.js';
import { selfSignedCertificate, startOidcProvider, type OidcProvider } from '../support/oidc-provider.js';

const ADMIN = { username: 'admin', password: 'Admin-Password-1' };
const AUDIENCE = 'registry.deployed';
const JOB = { sub: 'project_path:org/app:ref_type:branch:ref:main', project_path: 'org/app', ref: 'main', ref_type: 'branch', aud: AUDIENCE };
const certDir = mkdtempSync(join(tmpdir(), 'dsw-ca-'));
// Before the shape starts: its token function's environments read NODE_EXTRA_CA_CERTS when they start.
const certificate = selfSignedCertificate(certDir);

describe('workload logins through the local deployed shape', () => {
  let https: OidcProvider;
  let http: OidcProvider;
  afterAll(async () => {
    await Promise.all([https?.stop(), http?.stop()]);
    rmSync(certDir, { recursive: true, force: true });
  });
  const deployed = useDeployedShape('dsw', { auth: 'cognito', admin: ADMIN, extraCaCertificates: certificate.certFile });
  let skopeo: Skopeo;
  let source: string;
  const dataDir = () => join(deployed.workDir, 'registry');
  const login = (trust: string, idToken: string) => skopeo.run(['login', '--tls-verify=false', '-u', `trust$${trust}`, '-p', idToken, deployed.host]);
  const trustArgs = (name: string, issuer: string) => [
    'trust',
    'add',
    name,
    '--issuer',
    issuer,
    '--audience',
    AUDIENCE,
    '--claim',
    'project_path=org/app',
    '--claim',
    'ref_type=branch',
    '--grant',
    'ci/app/*:pull,push',
  ];

  beforeAll(async () => {
    [https, http] = await Promise.all([startOidcProvider({ https: certificate }), startOidcProvider()]);
    source = join(deployed.workDir, 'source');
    skopeo = await createSkopeo(join(deployed.workDir, 'skopeo'));
    await writeImage(source, { tag: 'v1', seed: 'deployed-shape/workload', layers: [{ sizeBytes: 64 * 1024 }] });
    await adminCli(dataDir(), trustArgs('gitlab-app', https.issuer));
    // The CLI lets a local target name a loopback http issuer; the deployed token function must not.
    await adminCli(dataDir(), trustArgs('plain-http', http.issuer));
  });

  it('skopeo logs in with an https issuer’s ID token at the token function and pushes inside the grants only', async () => {
    await login('gitlab-app', https.mint(JOB));
    await skopeo.copy(`oci:${source}:v1`, `docker://${deployed.host}/ci/app/web:v1`, ['--preserve-digests']);
    const refused = await failure(skopeo.copy(`oci:${source}:v1`, `docker://${deployed.host}/team-b/app:v1`, ['--preserve-digests']));
    expect(refused.stderr).toMatch(/denied: trust gitlab-app may not (push|pull) team-b\/app|403 \(Forbidden\)/);
    expect(https.requests).toContain('/.well-known/openid-configuration');
  });

  it('refuses a token failing a claim condition, and any plain-http issuer, without asking it', async () => {
    expect((await failure(login('gitlab-app', https.mint({ ...JOB, ref_type: 'tag' })))).stderr).toMatch(/invalid username\/password/);
    expect((await failure(login('plain-http', http.mint(JOB)))).stderr).toMatch(/invalid username\/password/);
    expect(http.requests).toEqual([]);
  });
});
