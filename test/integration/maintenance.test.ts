import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startLocalRegistry, type LocalRegistry } from '../../scripts/local/local-registry.js';
import { LOCAL_CREDENTIALS } from '../../scripts/local/local-credentials.js';
import { createAwsClients } from '../../registry/storage/aws-clients.js';
import { createServices } from '../../registry/services/services.js';
import { silentLogger } from '../../registry/support/logger.js';
import { runMaintenance } from '../../registry/services/maintenance/run-maintenance.js';
import { RegistryHttp, imageManifest } from '../support/registry-http.js';

/**
 * The scheduled run as a whole: retention deletes what its rule says, and the GC that follows
 * in the same run frees the blobs only those manifests used, but not a layer another
 * repository still uses.
 */
let dataDir: string;
let registry: LocalRegistry;
let http: RegistryHttp;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'maintenance-'));
  registry = await startLocalRegistry({ dataDir, port: 0, quiet: true });
  http = new RegistryHttp(registry.url);
});

afterAll(async () => {
  await registry?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

it('retention then GC frees an old image but keeps the newest and a layer shared elsewhere', async () => {
  const shared = 'a base layer both repositories use';
  const config = await http.pushBlob('app/web', '{"config":"old"}');
  const sharedLayer = await http.pushBlob('app/web', shared);
  await http.pushBlob('other/svc', shared);
  const oldOnly = await http.pushBlob('app/web', 'a layer only the old image has');
  const oldManifest = imageManifest(config, oldOnly);
  expect((await http.putManifest('app/web', 'v1', oldManifest)).status).toBe(201);
  const newManifest = imageManifest(config, sharedLayer);
  expect((await http.putManifest('app/web', 'v2', newManifest)).status).toBe(201);
  const otherConfig = await http.pushBlob('other/svc', '{"config":"other"}');
  expect((await http.putManifest('other/svc', 'v1', imageManifest(otherConfig, sharedLayer))).status).toBe(201);

  const clients = createAwsClients(registry.config, LOCAL_CREDENTIALS);
  const services = createServices(registry.config, clients);
  await services.policies.putRetentionRule({ pattern: 'app/*', keepLast: 1, untagged: 'delete' });
  // Retention orders tags by push time: v2, pushed after v1, is the one to keep.
  const settings = { graceSeconds: 0, dryRun: false, deadlineMarginSeconds: 0 };
  const report = await runMaintenance(registry.config, clients, services, settings, Date.now() + 120_000, silentLogger);

  expect(report.retention).toBeDefined();
  expect(await (await http.fetch('/v2/app/web/tags/list')).json()).toEqual({ name: 'app/web', tags: ['v2'] });
  expect((await http.fetch('/v2/app/web/manifests/v1')).status).toBe(404);
  expect((await http.fetch(`/v2/app/web/blobs/${oldOnly}`, { method: 'HEAD' })).status).toBe(404);
  for (const [name, digest] of [
    ['app/web', sharedLayer],
    ['other/svc', sharedLayer],
    ['app/web', config],
  ] as const) {
    expect((await http.fetch(`/v2/${name}/blobs/${digest}`, { method: 'HEAD' })).status).toBe(200);
  }
  expect(report.gc.bytesFreed).toBeGreaterThan(0);
});
