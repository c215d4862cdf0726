/**
 * Retention and immutable tags as a real client (skopeo) sees them. Policies exist only in our
 * registry, so this always runs against the local registry, whatever OCI_TEST_REGISTRY says.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startLocalRegistry, type LocalRegistry } from '../../scripts/local/local-registry.js';
import { LOCAL_CREDENTIALS } from '../../scripts/local/local-credentials.js';
import { applyRetention } from '../../registry/services/policies/apply-retention.js';
import { createServices, type RegistryServices } from '../../registry/services/services.js';
import { createAwsClients } from '../../registry/storage/aws-clients.js';
import { createSkopeo, ToolError, type Skopeo } from '../support/clients.js';
import { blobDifferences, imageBlobs, pulledManifestDigest } from '../support/layout-compare.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';

const SLOW_TEST_MS = 5 * 60 * 1000;

describe('policies with skopeo', () => {
  let dataDir: string;
  let registry: LocalRegistry;
  let services: RegistryServices;
  let workDir: string;
  let skopeo: Skopeo;
  let source: string;
  const images: WrittenImage[] = [];

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'policies-registry-'));
    registry = await startLocalRegistry({ dataDir, port: 0, quiet: true });
    services = createServices(registry.config, createAwsClients(registry.config, LOCAL_CREDENTIALS));
    workDir = await mkdtemp(join(tmpdir(), 'policies-skopeo-'));
    skopeo = await createSkopeo(join(workDir, 'skopeo'));
    await mkdir(join(workDir, 'pulled'));
    source = join(workDir, 'source');
    for (let i = 1; i <= 6; i++) {
      images.push(
        await writeImage(source, { tag: `build-${i}`, seed: `policies/${i}`, layers: [{ sizeBytes: 48 * 1024 }, { sizeBytes: 8 * 1024 }] }),
      );
    }
  }, SLOW_TEST_MS);

  afterAll(async () => {
    await registry?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  const ref = (repositoryAndTag: string) => `docker://${new URL(registry.url).host}/${repositoryAndTag}`;
  const push = (image: number, destination: string) => skopeo.copy(`oci:${source}:build-${image}`, ref(destination), ['--preserve-digests']);

  test(
    'retention keep-last 3 leaves exactly the 3 newest of 6 tags, which pull back byte for byte',
    async () => {
      for (let i = 1; i <= 6; i++) await push(i, `keep/app:build-${i}`);
      expect((await skopeo.listTags(ref('keep/app'))).sort()).toEqual(['build-1', 'build-2', 'build-3', 'build-4', 'build-5', 'build-6']);
      await services.policies.putRetentionRule({ pattern: 'keep/*', keepLast: 3, untagged: 'keep' });

      const report = await applyRetention(services, { dryRun: false });
      expect(report.totals).toMatchObject({ tagsDeleted: 3, manifestsDeleted: 3, skipped: 0, errors: 0 });

      expect((await skopeo.listTags(ref('keep/app'))).sort()).toEqual(['build-4', 'build-5', 'build-6']);
      for (let i = 4; i <= 6; i++) {
        const image = images[i - 1]!;
        const pulled = join(workDir, 'pulled', `keep-${i}`);
        await skopeo.copy(ref(`keep/app:build-${i}`), `oci:${pulled}:build-${i}`, ['--preserve-digests']);
        expect(await pulledManifestDigest(pulled, `build-${i}`)).toBe(image.manifestDigest);
        expect(await blobDifferences(source, pulled, imageBlobs(image))).toEqual([]);
      }
      for (let i = 1; i <= 3; i++) {
        await expectFailure(skopeo.inspect(ref(`keep/app:build-${i}`), ['--raw']), /manifest unknown|not found/i);
        await expectFailure(skopeo.inspect(ref(`keep/app@${images[i - 1]!.manifestDigest}`), ['--raw']), /manifest unknown|not found/i);
      }
    },
    SLOW_TEST_MS,
  );

  test(
    'an immutable tag refuses an overwrite, and skopeo shows why; latest stays mutable',
    async () => {
      await services.policies.putImmutableRule({ pattern: 'locked/*', excludes: ['latest'] });
      await push(1, 'locked/app:v1');

      const refused = await expectFailure(push(2, 'locked/app:v1'), /tag v1 of locked\/app is immutable \(rule locked\/\*\)/);
      expect(refused.stderr).toMatch(/denied/i);
      const stillFirst = await skopeo.inspect(ref('locked/app:v1'), ['--raw']);
      expect(stillFirst.stdout).toBe(images[0]!.manifest.toString('utf8'));

      // The same image again is accepted.
      await push(1, 'locked/app:v1');

      await push(1, 'locked/app:latest');
      await push(2, 'locked/app:latest');
      const latest = await skopeo.inspect(ref('locked/app:latest'), ['--raw']);
      expect(latest.stdout).toBe(images[1]!.manifest.toString('utf8'));

      await expectFailure(skopeo.delete(ref('locked/app:v1')), /immutable/);
      expect((await skopeo.listTags(ref('locked/app'))).sort()).toEqual(['latest', 'v1']);
    },
    SLOW_TEST_MS,
  );
});

/** The client must fail, and its error output must match. */
async function expectFailure(run: Promise<unknown>, stderr: RegExp): Promise<ToolError> {
  const error = await run.then(
    () => new Error('the command succeeded, but it should have been refused'),
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(ToolError);
  expect((error as ToolError).stderr).toMatch(stderr);
  return error as ToolError;
}
