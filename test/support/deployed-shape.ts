/**
 * The local deployed shape (scripts/local/deployed-shape/, docs/local-deployed-shape.md) for one
 * test file: started before the file's tests in a scratch directory of its own, with every
 * request API Gateway's emulator refused itself recorded, and stopped (data and all) after them.
 * Read the fields inside tests or hooks, once `beforeAll` has run; a file's own `afterAll` runs
 * before this one's, so what it started in `workDir` can stop there first.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { Refusal } from '../../scripts/local/api-gateway-emulator.js';
import { startDeployedShape, type DeployedShape, type DeployedShapeOptions } from '../../scripts/local/deployed-shape/deployed-shape.js';
import { RegistryHttp } from './registry-http.js';

export interface DeployedShapeUnderTest {
  /** The file's scratch directory (short: podman limits its run root to 50 characters); the shape's data is under `registry/`. */
  workDir: string;
  shape: DeployedShape;
  /** The distribution's host, as clients name the registry (`127.0.0.1:<port>`). */
  host: string;
  /** Raw HTTP to the distribution. */
  http: RegistryHttp;
  /** Requests the API Gateway emulator refused before the registry function saw them. */
  refusals: Refusal[];
}

export function useDeployedShape(
  name: string,
  options: Omit<DeployedShapeOptions, 'dataDir' | 'port' | 'quiet' | 'onRefusal'> = {},
): DeployedShapeUnderTest {
  const under = { refusals: [] as Refusal[] } as DeployedShapeUnderTest;
  beforeAll(async () => {
    under.workDir = join(tmpdir(), `${name}-${randomUUID().slice(0, 8)}`);
    await mkdir(under.workDir);
    under.shape = await startDeployedShape({
      ...options,
      dataDir: join(under.workDir, 'registry'),
      port: 0,
      quiet: true,
      onRefusal: (refusal) => under.refusals.push(refusal),
    });
    under.host = new URL(under.shape.url).host;
    under.http = new RegistryHttp(under.shape.url);
  });
  afterAll(async () => {
    await under.shape?.stop();
    if (under.workDir) await rm(under.workDir, { recursive: true, force: true });
  });
  return under;
}
