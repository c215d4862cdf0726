/**
 * The registry the client tests talk to. Tests only ever see a base URL, so the
 * same tests run against our local registry, the reference registry, or a
 * registry started elsewhere.
 *
 *   OCI_TEST_REGISTRY=local       our registry on its local stand-ins (default)
 *   OCI_TEST_REGISTRY=reference   docker-registry (distribution 2.8)
 *   OCI_TEST_REGISTRY_URL=http://127.0.0.1:5000   an already running registry; not started or stopped here
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalRegistry } from '../../scripts/local/local-registry.js';
import { startReferenceRegistry, type RunningRegistry } from './reference-registry.js';

type RegistryKind = 'local' | 'reference';

/** Which registry the client tests run against when the environment does not say. */
const DEFAULT_REGISTRY: RegistryKind = 'local';

export interface RegistryUnderTest {
  /** e.g. http://127.0.0.1:5055 */
  url: string;
  /** host:port, as used in image references such as `docker://<host>/<repo>:<tag>`. */
  host: string;
  kind: RegistryKind | 'external';
  /** Where the registry keeps its data and logs (empty for an external registry). */
  dataDir: string;
  stop(): Promise<void>;
}

export async function startRegistryUnderTest(): Promise<RegistryUnderTest> {
  const externalUrl = process.env.OCI_TEST_REGISTRY_URL;
  if (externalUrl) return registryAt(externalUrl.replace(/\/+$/, ''), 'external', '', async () => undefined);

  const kind = registryKind();
  const dataDir = await mkdtemp(join(tmpdir(), `oci-client-tests-${kind}-`));
  const registry = await startRegistry(kind, dataDir);
  return registryAt(registry.url, kind, dataDir, async () => {
    await registry.stop();
    // Keep the data (and the registry's log) when asked, to look at after a failure.
    if (!process.env.OCI_TEST_KEEP_DATA) await rm(dataDir, { recursive: true, force: true });
  });
}

/** The registry the tests will talk to, known before it is started (e.g. to mark its known gaps). */
export function selectedRegistryKind(): RegistryUnderTest['kind'] {
  return process.env.OCI_TEST_REGISTRY_URL ? 'external' : registryKind();
}

function registryKind(): RegistryKind {
  const requested = process.env.OCI_TEST_REGISTRY ?? DEFAULT_REGISTRY;
  if (requested !== 'local' && requested !== 'reference') {
    throw new Error(`OCI_TEST_REGISTRY must be "local" or "reference", not "${requested}"`);
  }
  return requested;
}

async function startRegistry(kind: RegistryKind, dataDir: string): Promise<RunningRegistry> {
  if (kind === 'reference') return startReferenceRegistry({ dataDir });
  return startLocalRegistry({ dataDir, port: 0, quiet: true });
}

function registryAt(url: string, kind: RegistryUnderTest['kind'], dataDir: string, stop: () => Promise<void>): RegistryUnderTest {
  return { url, host: new URL(url).host, kind, dataDir, stop };
}
