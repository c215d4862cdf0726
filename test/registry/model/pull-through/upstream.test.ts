import { describe, expect, it } from 'vitest';
import { parseChallenge } from '../../../../registry/model/pull-through/challenge.js';
import {
  cacheTargetOf,
  canonicalNameOf,
  defaultHosts,
  normalizeHost,
  parseUpstreamUrl,
  prefixesOverlap,
  type Upstream,
} from '../../../../registry/model/pull-through/upstream.js';

function upstream(name: string, prefix: string, dockerHub = false): Upstream {
  return {
    name,
    url: 'https://r.example',
    prefix,
    hosts: [],
    dockerHub,
    tagTtlSeconds: 300,
    credentials: 'none',
    credentialsVersion: 1,
    createdAt: '',
    updatedAt: '',
  };
}

describe('cache names', () => {
  it("Docker Hub's one-component names gain library/, others stay as they are", () => {
    expect(canonicalNameOf(upstream('hub', 'hub', true), 'nginx')).toBe('hub/library/nginx');
    expect(canonicalNameOf(upstream('hub', 'hub', true), 'bitnami/redis')).toBe('hub/bitnami/redis');
    expect(canonicalNameOf(upstream('quay', 'quay'), 'nginx')).toBe('quay/nginx');
  });

  it('the longest prefix a name starts with wins; a name merely sharing letters is the team’s own', () => {
    const upstreams = [upstream('cache', 'cache', true), upstream('quay', 'cache/quay')];
    expect(cacheTargetOf(upstreams, 'cache/quay/org/app')).toMatchObject({ upstream: { name: 'quay' }, upstreamPath: 'org/app' });
    expect(cacheTargetOf(upstreams, 'cache/nginx')).toMatchObject({ upstream: { name: 'cache' }, upstreamPath: 'library/nginx' });
    expect(cacheTargetOf(upstreams, 'cachet/app')).toBeUndefined();
    expect(cacheTargetOf(upstreams, 'cache')).toBeUndefined();
  });

  it('prefixes overlap when one is the other or leads it by whole components', () => {
    expect(prefixesOverlap('hub', 'hub/x')).toBe(true);
    expect(prefixesOverlap('hub', 'hub')).toBe(true);
    expect(prefixesOverlap('hub', 'hubble')).toBe(false);
  });
});

describe('upstream URLs and hosts', () => {
  it('takes https, and http on loopback only; no path, query or user info', () => {
    expect(parseUpstreamUrl('https://registry-1.docker.io').origin).toBe('https://registry-1.docker.io');
    expect(parseUpstreamUrl('http://127.0.0.1:5001/').origin).toBe('http://127.0.0.1:5001');
    expect(() => parseUpstreamUrl('http://quay.io')).toThrow(/https/);
    expect(() => parseUpstreamUrl('https://quay.io/v2')).toThrow(/path/);
    expect(() => parseUpstreamUrl('https://quay.io?x=1')).toThrow(/query/);
    expect(() => parseUpstreamUrl('https://me:secret@quay.io')).toThrow(/user info/);
  });

  it('hosts are lower case without default ports; Docker Hub also answers docker.io', () => {
    expect(normalizeHost('Quay.IO:443')).toBe('quay.io');
    expect(defaultHosts(new URL('https://registry-1.docker.io'), true)).toEqual(['registry-1.docker.io', 'docker.io']);
    expect(defaultHosts(new URL('http://127.0.0.1:5001'), false)).toEqual(['127.0.0.1:5001']);
  });
});

describe('WWW-Authenticate', () => {
  it('parses Bearer challenges with quoted values holding commas', () => {
    expect(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/a:pull,push"')).toEqual(
      { scheme: 'bearer', realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/a:pull,push' },
    );
  });

  it('parses Basic, and refuses what it cannot use', () => {
    expect(parseChallenge('Basic realm="upstream"')).toEqual({ scheme: 'basic', realm: 'upstream' });
    expect(parseChallenge('Bearer service="x"')).toBeUndefined();
    expect(parseChallenge('Negotiate abc')).toBeUndefined();
    expect(parseChallenge(undefined)).toBeUndefined();
  });
});
