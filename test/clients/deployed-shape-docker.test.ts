/**
 * docker (Engine 20.10, the classic graph-driver store: one PATCH per layer) through the local
 * deployed shape, when Debian's docker.io is installed: login, push and pull of a small image;
 * a layer over API Gateway's limit fails and docker prints the registry's error, with the ways
 * out. Skipped when there is no dockerd.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ToolError } from '../support/clients.js';
import { useDeployedShape } from '../support/deployed-shape.js';
import { DOCKERD, startDockerd, type Dockerd } from '../support/dockerd.js';

const MiB = 1024 * 1024;
const SLOW_TEST_MS = 10 * 60 * 1000;

describe.skipIf(!DOCKERD)('docker through the local deployed shape', () => {
  const deployed = useDeployedShape('dsd');
  let dockerd: Dockerd;

  beforeAll(async () => {
    dockerd = await startDockerd(join(deployed.workDir, 'docker'));
  }, SLOW_TEST_MS);

  afterAll(async () => {
    await dockerd?.stop();
  });

  /** Builds a FROM scratch image with one file of `bytes` (no containers needed). */
  async function build(tag: string, bytes: number): Promise<void> {
    const context = join(deployed.workDir, `context-${tag.replace(/\W/g, '-')}`);
    await mkdir(context, { recursive: true });
    await writeFile(join(context, 'data'), randomBytes(bytes));
    await writeFile(join(context, 'Dockerfile'), 'FROM scratch\nCOPY data /data\n');
    await dockerd.docker(['build', '-q', '-t', tag, context]);
  }

  it(
    'logs in, pushes an image with a small layer and pulls it back',
    async () => {
      const tag = `${deployed.host}/docker/small:v1`;
      await build(tag, 256 * 1024);
      // The shape is open: docker login only needs GET /v2/ to answer 200.
      const login = await dockerd.docker(['login', deployed.host, '--username', 'anyone', '--password', 'unused']);
      expect(login.stdout).toContain('Login Succeeded');
      await dockerd.docker(['push', tag]);
      const { stdout: id } = await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', tag]);
      await dockerd.docker(['rmi', tag]);
      await dockerd.docker(['pull', tag]);
      expect((await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', tag])).stdout).toBe(id);
    },
    SLOW_TEST_MS,
  );

  it(
    'shows the registry’s error, naming the limit and the ways out, when a layer is over API Gateway’s limit',
    async () => {
      const tag = `${deployed.host}/docker/big:v1`;
      await build(tag, 12 * MiB);
      const failure = await dockerd.docker(['push', tag]).then(
        () => new Error('the push succeeded, but a 12 MiB PATCH cannot pass API Gateway'),
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(ToolError);
      const output = `${(failure as ToolError).stdout}\n${(failure as ToolError).stderr}`;
      expect(output).toMatch(/size invalid: .*about 4\.4 MiB/);
      expect(output).toMatch(/enable the upload gateway/);
    },
    SLOW_TEST_MS,
  );
});
