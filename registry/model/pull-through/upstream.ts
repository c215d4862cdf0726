import { isValidName } from '../oci/grammar.js';

/**
 * An upstream registry the pull-through cache reads from (docs/pull-through.md). Data, managed
 * with `npm run admin -- upstream add|list|remove|test`; its credentials are never part of it
 * (they live in SSM or an owner-only file: storage/upstream-credentials.ts).
 */
export interface Upstream {
  /** `[a-z0-9-]{1,32}`: how the CLI, logs and metrics name it. */
  name: string;
  /** `scheme://host[:port]`, no path, query or user info. */
  url: string;
  /** One or more name components; cache repositories are `<prefix>/<upstream path>`. */
  prefix: string;
  /** The `ns=` values (containerd mirrors) that select this upstream, lower-cased, default ports dropped. */
  hosts: string[];
  /** Docker Hub: one-component paths gain `library/`, `ns=docker.io`, and the Docker mirror entry. At most one. */
  dockerHub: boolean;
  /** How long a cached tag is served without asking the upstream (0: always revalidate). */
  tagTtlSeconds: number;
  /** Cached images not pulled for this many days expire in the maintenance run. */
  keepDays?: number;
  credentials: 'none' | 'basic';
  /** Bumped whenever the credentials change, so that processes read them again. */
  credentialsVersion: number;
  createdAt: string;
  updatedAt: string;
}

/** Where a request in a cache repository goes upstream. `params.name` is already the canonical name `<prefix>/<upstreamPath>`. */
export interface CacheTarget {
  upstream: Upstream;
  upstreamPath: string;
}

export const DEFAULT_TAG_TTL_SECONDS = 300;
const UPSTREAM_NAME = /^[a-z0-9-]{1,32}$/;
const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
/** What containerd sends as `ns` for Docker Hub images. */
export const DOCKER_HUB_NAMESPACE = 'docker.io';

export function isUpstreamName(name: string): boolean {
  return UPSTREAM_NAME.test(name);
}

/** A host as `ns=` names it: lower case, without the scheme's default port. */
export function normalizeHost(host: string, scheme = 'https:'): string {
  const lower = host.trim().toLowerCase();
  if (scheme === 'https:' && lower.endsWith(':443')) return lower.slice(0, -4);
  if (scheme === 'http:' && lower.endsWith(':80')) return lower.slice(0, -3);
  return lower;
}

export function isDockerHubHost(host: string): boolean {
  return DOCKER_HUB_HOSTS.has(normalizeHost(host));
}

/** Loopback hosts may be reached over plain http (tests, a registry beside the CLI). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * Checks an upstream URL and answers it as `scheme://host[:port]`; throws an Error naming what
 * is wrong: https only (http on loopback), no path, query, fragment or user info.
 */
export function parseUpstreamUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`not a URL: ${raw}`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    throw new Error('the upstream URL must be https (http only on loopback)');
  }
  if (url.username || url.password) throw new Error('the upstream URL may not carry user info: use --username and --password-stdin');
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash)
    throw new Error('the upstream URL may not have a path, query or fragment');
  return url;
}

/** A prefix is a valid repository name of one or more components. */
export function isValidPrefix(prefix: string): boolean {
  return isValidName(prefix) && prefix.length <= 128;
}

/** Whether one prefix is the other or contains it as leading components (`hub` and `hub/x`). */
export function prefixesOverlap(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
}

/** The upstream path of a request path under an upstream: Docker Hub's one-component names gain `library/`. */
export function upstreamPathOf(upstream: Pick<Upstream, 'dockerHub'>, path: string): string {
  return upstream.dockerHub && !path.includes('/') ? `library/${path}` : path;
}

/** The canonical (stored, granted) name of an upstream path: `<prefix>/<upstream path>`. */
export function canonicalNameOf(upstream: Pick<Upstream, 'prefix' | 'dockerHub'>, path: string): string {
  return `${upstream.prefix}/${upstreamPathOf(upstream, path)}`;
}

/** The upstream under whose prefix `name` lies (the longest prefix wins), with the target; undefined for a team repository. */
export function cacheTargetOf(upstreams: readonly Upstream[], name: string): CacheTarget | undefined {
  let best: Upstream | undefined;
  for (const upstream of upstreams) {
    if (name.startsWith(`${upstream.prefix}/`) && (!best || upstream.prefix.length > best.prefix.length)) best = upstream;
  }
  return best && { upstream: best, upstreamPath: upstreamPathOf(best, name.slice(best.prefix.length + 1)) };
}

/** The `ns` hosts an upstream answers by default: its URL's host, plus `docker.io` for Docker Hub. */
export function defaultHosts(url: URL, dockerHub: boolean): string[] {
  const hosts = new Set([normalizeHost(url.host, url.protocol)]);
  if (dockerHub) hosts.add(DOCKER_HUB_NAMESPACE);
  return [...hosts];
}
