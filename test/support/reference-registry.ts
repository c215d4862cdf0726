import { findFreePort } from '../../scripts/local/child-processes.js';
/**
 * Runs the reference registry (CNCF distribution 2.8, Debian package
 * `docker-registry`) on loopback, so client tests have a known-good registry to
 * compare ours with.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const BINARY = '/usr/bin/docker-registry';
const STARTUP_TIMEOUT_MS = 15_000;

export interface RunningRegistry {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * How the registry authenticates (distribution's `auth:` section): `htpasswd` takes bcrypt
 * entries only; `token` trusts JWTs whose x5c chain ends in `rootCertBundle`.
 */
export type ReferenceAuth =
  | { htpasswd: { realm: string; path: string } }
  | { token: { realm: string; service: string; issuer: string; rootCertBundle: string } };

export async function startReferenceRegistry(options: { dataDir: string; port?: number; auth?: ReferenceAuth }): Promise<RunningRegistry> {
  await mkdir(options.dataDir, { recursive: true });
  const port = options.port || (await findFreePort());
  const configPath = join(options.dataDir, 'config.yml');
  await writeFile(configPath, referenceConfig(join(options.dataDir, 'storage'), port, options.auth));

  // The access log goes to a file: it is the easiest way to see which request a client choked on.
  const log = createWriteStream(join(options.dataDir, 'registry.log'));
  const child = spawn(BINARY, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);

  // Do not leave the registry behind if the test process ends without calling stop().
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const url = `http://127.0.0.1:${port}`;
  await waitUntilServing(url, child);
  return {
    url,
    port,
    stop: async () => {
      process.off('exit', killOnExit);
      await stopChild(child);
    },
  };
}

function referenceConfig(storageDir: string, port: number, auth?: ReferenceAuth): string {
  return [
    'version: 0.1',
    'log: { level: info, accesslog: { disabled: false } }',
    `storage: { filesystem: { rootdirectory: ${JSON.stringify(storageDir)} }, delete: { enabled: true } }`,
    `http: { addr: "127.0.0.1:${port}" }`,
    ...(auth ? [`auth: ${authSection(auth)}`] : []),
    '',
  ].join('\n');
}

/** YAML flow mappings are JSON-compatible, so JSON.stringify writes the section. */
function authSection(auth: ReferenceAuth): string {
  if ('htpasswd' in auth) return JSON.stringify({ htpasswd: auth.htpasswd });
  const { realm, service, issuer, rootCertBundle } = auth.token;
  return JSON.stringify({ token: { realm, service, issuer, rootcertbundle: rootCertBundle } });
}

async function waitUntilServing(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${BINARY} exited with ${child.exitCode} while starting`);
    try {
      const response = await fetch(`${url}/v2/`);
      // 401: serving, behind authentication.
      if (response.ok || response.status === 401) return;
    } catch {
      // Not listening yet.
    }
    await sleep(100);
  }
  await stopChild(child);
  throw new Error(`${BINARY} did not answer GET ${url}/v2/ within ${STARTUP_TIMEOUT_MS} ms`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}
