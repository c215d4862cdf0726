/**
 * The audit log in the local deployed shape (docs/local-deployed-shape.md): skopeo pushes through
 * the front door, API Gateway's emulator and the bundled registry function, logs in at the bundled
 * token function, and `npm run admin -- --local audit list --json` shows the push with its actor
 * and the refused login, as in AWS.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../registry/model/audit/audit-record.js';
import { adminCli } from '../auth/admin-cli.js';
import { createSkopeo, toolFailure } from '../support/clients.js';
import { useDeployedShape } from '../support/deployed-shape.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';

const ADMIN = { username: 'admin', password: 'Admin-Password-1' };
const SLOW_TEST_MS = 5 * 60 * 1000;

describe('the audit log in the deployed shape', () => {
  const deployed = useDeployedShape('dsa', { auth: 'cognito', admin: ADMIN });
  let image: WrittenImage;

  beforeAll(async () => {
    const source = join(deployed.workDir, 'source');
    image = await writeImage(source, { tag: 'v1', seed: 'deployed-shape/audit', layers: [{ sizeBytes: 64 * 1024 }] });
    const skopeo = await createSkopeo(join(deployed.workDir, 'skopeo'));
    await skopeo.copy(`oci:${source}:v1`, `docker://${deployed.host}/audit/app:v1`, [
      '--preserve-digests',
      '--dest-creds',
      `${ADMIN.username}:${ADMIN.password}`,
    ]);
    await toolFailure(skopeo.run(['login', '--tls-verify=false', '-u', ADMIN.username, '-p', 'Wrong-Password-1', deployed.host]));
  }, SLOW_TEST_MS);

  it(
    'audit list --json shows the push with its actor and source, and the refused login',
    async () => {
      const stdout = await adminCli(join(deployed.workDir, 'registry'), ['audit', 'list', '--json']);
      const records = stdout
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as AuditRecord);
      expect(records).toContainEqual(
        expect.objectContaining({
          action: 'push',
          actor: { subject: ADMIN.username, kind: 'user' },
          repository: 'audit/app',
          reference: 'v1',
          digest: image.manifestDigest,
          sourceIp: '127.0.0.1',
          outcome: 'success',
        }),
      );
      expect(records).toContainEqual(
        expect.objectContaining({ action: 'login', actor: { subject: ADMIN.username, kind: 'user' }, outcome: 'refused', reason: 'bad-credentials' }),
      );
      expect(stdout).not.toContain(ADMIN.password);
    },
    SLOW_TEST_MS,
  );
});
