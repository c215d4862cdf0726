/**
 * `upstream add|list|remove` as commands, run in-process on in-memory stores: what they refuse
 * before anything is written, where the password goes, and that no output carries it. The
 * whole CLI against a running registry: test/integration/pull-through-manifests.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { Upstream } from '../../registry/model/pull-through/upstream.js';
import type { UpstreamCredentials } from '../../registry/storage/upstream-credentials.js';
import type { AdminClients } from '../../scripts/admin/clients.js';
import type { CommandContext, OptionValues, Output } from '../../scripts/admin/command.js';
import { AdminError, UsageError } from '../../scripts/admin/errors.js';
import { upstreamCommands } from '../../scripts/admin/upstream-commands.js';

const PASSWORD = 'hunter2-but-longer';

function fakes(repositories: { name: string; cachedFrom?: string }[] = []) {
  const upstreams = new Map<string, Upstream>();
  const secrets = new Map<string, UpstreamCredentials>();
  const printed: string[] = [];
  const clients = {
    target: { description: 'test', registryHost: 'registry.example' },
    upstreamStore: () => ({
      list: async () => [...upstreams.values()],
      get: async (name: string) => upstreams.get(name),
      put: async (upstream: Upstream) => void upstreams.set(upstream.name, upstream),
      delete: async (name: string) => upstreams.delete(name),
      ownRepositoriesUnder: async (prefix: string) =>
        repositories.filter((repository) => repository.name.startsWith(`${prefix}/`) && !repository.cachedFrom).map((repository) => repository.name),
    }),
    upstreamCredentials: () => ({
      get: async (name: string) => secrets.get(name),
      put: async (name: string, credentials: UpstreamCredentials) => void secrets.set(name, credentials),
      delete: async (name: string) => void secrets.delete(name),
    }),
  } as unknown as AdminClients;
  const out: Output = {
    line: (text = '') => void printed.push(text),
    json: (value) => void printed.push(JSON.stringify(value)),
    note: (text) => void printed.push(text),
    readStdin: async () => `${PASSWORD}\n`,
  };
  const run = (name: string, args: string[], options: OptionValues = {}) =>
    upstreamCommands.find((command) => command.name === `upstream ${name}`)!.run({ args, options, clients, out } as CommandContext);
  return { upstreams, secrets, printed, run };
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error('it succeeded');
    },
    (error: Error) => error,
  );
}

describe('upstream add', () => {
  it('stores the upstream and its password apart; output names neither the password nor its encoding', async () => {
    const { upstreams, secrets, printed, run } = fakes();
    await run('add', ['hub'], {
      url: 'https://registry-1.docker.io',
      prefix: 'docker.io',
      username: 'me',
      'password-stdin': true,
      'keep-days': '30',
    });
    expect(upstreams.get('hub')).toMatchObject({ prefix: 'docker.io', dockerHub: true, credentials: 'basic', keepDays: 30, tagTtlSeconds: 300 });
    expect(JSON.stringify(upstreams.get('hub'))).not.toContain(PASSWORD);
    expect(secrets.get('hub')?.password).toBe(PASSWORD);
    expect(JSON.stringify(secrets.get('hub'))).toBe('"[redacted]"');
    await run('list', [], { json: true });
    const all = printed.join('\n');
    expect(all).toContain("grant <group> 'docker.io/*' pull");
    expect(all).not.toContain(PASSWORD);
    expect(all).not.toContain(Buffer.from(`me:${PASSWORD}`).toString('base64'));
  });

  it('refuses bad URLs, prefixes, names and a password without a user, before writing anything', async () => {
    const { upstreams, run } = fakes();
    const cases: [string[], OptionValues, RegExp][] = [
      [['hub'], { url: 'http://quay.io', prefix: 'quay' }, /https/],
      [['hub'], { url: 'https://quay.io/v2', prefix: 'quay' }, /path/],
      [['hub'], { url: 'https://quay.io', prefix: 'Quay' }, /valid repository name/],
      [['Hub!'], { url: 'https://quay.io', prefix: 'quay' }, /upstream names/],
      [['hub'], { url: 'https://quay.io', prefix: 'quay', 'password-stdin': true }, /needs --username/],
      [['hub'], { url: 'https://quay.io', prefix: 'quay', username: 'me' }, /--password-stdin/],
      [['hub'], { url: 'https://quay.io', prefix: 'quay', 'tag-ttl': '-1' }, /--tag-ttl/],
      [['hub'], { prefix: 'quay' }, /--url/],
    ];
    for (const [args, options, message] of cases) {
      const error = await failure(run('add', args, options));
      expect(error, JSON.stringify(options)).toBeInstanceOf(UsageError);
      expect(error.message).toMatch(message);
    }
    expect(upstreams.size).toBe(0);
  });

  it("refuses a prefix holding the registry's own repositories, an overlap, a second Docker Hub, a taken ns", async () => {
    const { run } = fakes([{ name: 'team/app' }, { name: 'hub/library/nginx', cachedFrom: 'hub' }]);
    expect((await failure(run('add', ['t'], { url: 'https://quay.io', prefix: 'team' }))).message).toContain('team/app');
    await run('add', ['hub'], { url: 'https://registry-1.docker.io', prefix: 'hub' });
    const cases: [OptionValues, RegExp][] = [
      [{ url: 'https://quay.io', prefix: 'hub/quay' }, /overlaps upstream hub/],
      [{ url: 'https://index.docker.io', prefix: 'dh' }, /already the Docker Hub upstream/],
      [{ url: 'https://quay.io', prefix: 'quay', ns: ['docker.io'] }, /already answers ns=docker.io/],
    ];
    for (const [options, message] of cases) {
      const error = await failure(run('add', ['other'], options));
      expect(error).toBeInstanceOf(AdminError);
      expect(error.message).toMatch(message);
    }
    expect((await failure(run('add', ['hub'], { url: 'https://quay.io', prefix: 'q' }))).message).toContain('--replace');
  });

  it('--replace keeps createdAt and bumps credentialsVersion; remove takes the credentials too', async () => {
    const { upstreams, secrets, run } = fakes();
    await run('add', ['q'], { url: 'https://quay.io', prefix: 'quay', username: 'me', 'password-stdin': true });
    const first = upstreams.get('q')!;
    await run('add', ['q'], { url: 'https://quay.io', prefix: 'quay', 'tag-ttl': '0', replace: true });
    expect(upstreams.get('q')).toMatchObject({
      createdAt: first.createdAt,
      credentialsVersion: first.credentialsVersion + 1,
      credentials: 'none',
      tagTtlSeconds: 0,
    });
    expect(secrets.has('q')).toBe(false);
    await run('add', ['q'], { url: 'https://quay.io', prefix: 'quay', username: 'me', 'password-stdin': true, replace: true });
    await run('remove', ['q']);
    expect([upstreams.size, secrets.size]).toEqual([0, 0]);
  });
});
