/**
 * The local registry on its stand-ins for one test file: started before the file's tests, with
 * a raw-HTTP client and SDK clients on the same table and bucket, and stopped (data and all)
 * after them. Read the fields inside tests or hooks, once `beforeAll` has run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { startLocalRegistry, type LocalRegistry, type LocalRegistryOptions } from '../../scripts/local/local-registry.js';
import { LOCAL_CREDENTIALS } from '../../scripts/local/local-credentials.js';
import { createAwsClients, type AwsClients } from '../../registry/storage/aws-clients.js';
import { RegistryHttp } from '../support/registry-http.js';

export interface LocalStack {
  registry: LocalRegistry;
  http: RegistryHttp;
  clients: AwsClients;
  dataDir: string;
}

export function useLocalStack(name: string, options: Partial<LocalRegistryOptions> = {}): LocalStack {
  const stack = {} as LocalStack;
  beforeAll(async () => {
    stack.dataDir = await mkdtemp(join(tmpdir(), `${name}-`));
    stack.registry = await startLocalRegistry({ dataDir: stack.dataDir, port: 0, quiet: true, ...options });
    stack.http = new RegistryHttp(stack.registry.url);
    stack.clients = createAwsClients(stack.registry.config, LOCAL_CREDENTIALS);
  });
  afterAll(async () => {
    stack.clients?.dynamo.destroy();
    stack.clients?.s3.destroy();
    await stack.registry?.stop();
    if (stack.dataDir) await rm(stack.dataDir, { recursive: true, force: true });
  });
  return stack;
}
