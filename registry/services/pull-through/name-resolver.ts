import type { RegistryRequest } from '../../model/http.js';
import { RegistryError } from '../../model/oci/errors.js';
import { isValidName } from '../../model/oci/grammar.js';
import { cacheTargetOf, canonicalNameOf, normalizeHost, upstreamPathOf, type CacheTarget, type Upstream } from '../../model/pull-through/upstream.js';

export interface ResolvedName {
  /** The canonical name: what is authorized, stored and granted. */
  name: string;
  /** Set for a pull-through cache repository. */
  cache?: CacheTarget;
}

const READS = new Set(['GET', 'HEAD']);

/**
 * Which repository a request names (docs/pull-through.md, "Names"), in this order:
 * 1. `ns=<host>` (containerd's mirror parameter, on reads): the upstream whose hosts hold it
 *    (a path already under its prefix, as a prefix mirror sends it, is taken as it is); none is
 *    NAME_UNKNOWN, so containerd tries its next host. `ns` never names a team repository.
 * 2. The Docker Hub mirror entry (dockerd's `registry-mirrors`): the Docker Hub upstream; reads only.
 * 3. A name under an upstream's prefix (the longest wins): that upstream.
 * 4. Anything else: the team's own repository, as named.
 * Docker Hub's one-component paths gain `library/`, so `hub/nginx` is `hub/library/nginx`.
 */
export class NameResolver {
  constructor(private readonly upstreams: () => Promise<Upstream[]>) {}

  async resolve(request: Pick<RegistryRequest, 'method' | 'query' | 'headers' | 'entry'>, name: string): Promise<ResolvedName> {
    const read = READS.has(request.method);
    if (request.entry === 'docker-mirror') {
      if (!read) throw new RegistryError('UNSUPPORTED', 'the Docker Hub mirror endpoint is read-only', { detail: { name } });
      const upstream = (await this.upstreams()).find((candidate) => candidate.dockerHub);
      if (!upstream) {
        throw new RegistryError(
          'NAME_UNKNOWN',
          'no Docker Hub upstream is configured for the mirror endpoint; add one with `npm run admin -- upstream add ... --docker-hub`',
          {
            detail: { name },
          },
        );
      }
      return this.under(upstream, name);
    }
    const ns = read ? request.query.get('ns') : null;
    if (ns && !this.isOwnHost(ns, request.headers.host)) {
      const host = normalizeHost(ns);
      const upstream = (await this.upstreams()).find((candidate) => candidate.hosts.includes(host));
      if (!upstream) {
        throw new RegistryError(
          'NAME_UNKNOWN',
          `no upstream is configured for ns=${host.slice(0, 255)}; add one with \`npm run admin -- upstream add <name> --url https://${host.slice(0, 255)} --prefix <prefix>\``,
          {
            detail: { name, ns: host.slice(0, 255) },
          },
        );
      }
      // A prefix mirror (containerd's `override_path = true`) sends the prefixed path and may add `ns` too.
      return name.startsWith(`${upstream.prefix}/`) ? this.under(upstream, name.slice(upstream.prefix.length + 1)) : this.under(upstream, name);
    }
    const cache = cacheTargetOf(await this.upstreams(), name);
    return cache ? { name: `${cache.upstream.prefix}/${cache.upstreamPath}`, cache } : { name };
  }

  /** The canonical name of a token scope's repository: rule 3, or rule 2 on the mirror entry (a token request never carries `ns`). */
  async canonicalScopeName(name: string, entry?: RegistryRequest['entry']): Promise<string> {
    const upstreams = await this.upstreams();
    if (entry === 'docker-mirror') {
      const hub = upstreams.find((candidate) => candidate.dockerHub);
      return hub ? canonicalNameOf(hub, name) : name;
    }
    const cache = cacheTargetOf(upstreams, name);
    return cache ? `${cache.upstream.prefix}/${cache.upstreamPath}` : name;
  }

  private under(upstream: Upstream, path: string): ResolvedName {
    const upstreamPath = upstreamPathOf(upstream, path);
    const name = `${upstream.prefix}/${upstreamPath}`;
    if (!isValidName(name)) throw new RegistryError('NAME_INVALID', 'invalid repository name', { detail: { name } });
    return { name, cache: { upstream, upstreamPath } };
  }

  private isOwnHost(ns: string, host: string | undefined): boolean {
    return host !== undefined && normalizeHost(ns) === normalizeHost(host, 'http:');
  }
}
