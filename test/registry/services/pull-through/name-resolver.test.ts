import { describe, expect, it } from 'vitest';
import type { RegistryRequest } from '../../../../registry/model/http.js';
import { RegistryError } from '../../../../registry/model/oci/errors.js';
import type { Upstream } from '../../../../registry/model/pull-through/upstream.js';
import { NameResolver } from '../../../../registry/services/pull-through/name-resolver.js';

const base = { tagTtlSeconds: 300, credentials: 'none', credentialsVersion: 1, createdAt: '', updatedAt: '' } as const;
const upstreams: Upstream[] = [
  { ...base, name: 'hub', url: 'https://registry-1.docker.io', prefix: 'docker.io', hosts: ['registry-1.docker.io', 'docker.io'], dockerHub: true },
  { ...base, name: 'quay', url: 'https://quay.io', prefix: 'quay', hosts: ['quay.io'], dockerHub: false },
];
const resolver = new NameResolver(async () => upstreams);

function request(method: string, query = '', entry?: 'docker-mirror'): Pick<RegistryRequest, 'method' | 'query' | 'headers' | 'entry'> {
  return { method, query: new URLSearchParams(query), headers: { host: 'registry.example' }, ...(entry ? { entry } : {}) };
}

async function refusal(promise: Promise<unknown>): Promise<RegistryError> {
  const error = await promise.catch((failure: unknown) => failure);
  if (!(error instanceof RegistryError)) throw new Error('not refused');
  return error;
}

describe('name resolution', () => {
  it('a prefix selects its upstream, and Docker Hub names gain library/', async () => {
    expect(await resolver.resolve(request('GET'), 'docker.io/nginx')).toMatchObject({
      name: 'docker.io/library/nginx',
      cache: { upstreamPath: 'library/nginx' },
    });
    expect(await resolver.resolve(request('PUT'), 'quay/org/app')).toMatchObject({ name: 'quay/org/app', cache: { upstream: { name: 'quay' } } });
    expect(await resolver.resolve(request('GET'), 'team/app')).toEqual({ name: 'team/app' });
  });

  it('ns= selects the upstream answering that host, on reads only, never a team repository', async () => {
    expect(await resolver.resolve(request('GET', 'ns=docker.io'), 'library/nginx')).toMatchObject({ name: 'docker.io/library/nginx' });
    expect(await resolver.resolve(request('HEAD', 'ns=QUAY.IO:443'), 'org/app')).toMatchObject({ name: 'quay/org/app' });
    // A prefix mirror (override_path) sends the prefixed path, with ns too.
    expect(await resolver.resolve(request('GET', 'ns=docker.io'), 'docker.io/library/nginx')).toMatchObject({ name: 'docker.io/library/nginx' });
    expect(await resolver.resolve(request('GET', 'ns=registry.example'), 'team/app')).toEqual({ name: 'team/app' });
    expect(await resolver.resolve(request('PUT', 'ns=docker.io'), 'team/app')).toEqual({ name: 'team/app' });
    const unknown = await refusal(resolver.resolve(request('GET', 'ns=ghcr.io'), 'org/app'));
    expect([unknown.code, unknown.status]).toEqual(['NAME_UNKNOWN', 404]);
    expect(unknown.message).toContain('ns=ghcr.io');
  });

  it('the mirror entry is Docker Hub, read-only', async () => {
    expect(await resolver.resolve(request('GET', '', 'docker-mirror'), 'nginx')).toMatchObject({ name: 'docker.io/library/nginx' });
    const push = await refusal(resolver.resolve(request('POST', '', 'docker-mirror'), 'library/nginx'));
    expect(push.code).toBe('UNSUPPORTED');
    const none = await refusal(new NameResolver(async () => upstreams.slice(1)).resolve(request('GET', '', 'docker-mirror'), 'nginx'));
    expect(none.code).toBe('NAME_UNKNOWN');
  });

  it('token scopes resolve to canonical names: by prefix, or as Docker Hub names on the mirror entry', async () => {
    expect(await resolver.canonicalScopeName('docker.io/nginx')).toBe('docker.io/library/nginx');
    expect(await resolver.canonicalScopeName('library/nginx', 'docker-mirror')).toBe('docker.io/library/nginx');
    expect(await resolver.canonicalScopeName('team/app')).toBe('team/app');
  });
});
