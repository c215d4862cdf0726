import { createHash } from 'node:crypto';
import { parseChallenge, type Challenge } from '../../model/pull-through/challenge.js';
import { isLoopbackHost, type CacheTarget, type Upstream } from '../../model/pull-through/upstream.js';
import { UpstreamError } from '../../model/pull-through/upstream-error.js';
import { MAX_MANIFEST_BYTES } from '../../model/oci/manifest.js';
import { MediaType } from '../../model/oci/media-types.js';
import { parseDigest } from '../../model/oci/grammar.js';
import type { UpstreamCredentials } from '../../storage/upstream-credentials.js';
import type { Logger } from '../../support/logger.js';

export interface UpstreamManifestHead {
  digest?: string;
  mediaType: string;
  size: number;
}

export interface UpstreamManifest {
  digest: string;
  mediaType: string;
  bytes: Uint8Array;
}

export type UpstreamBlob =
  | { kind: 'redirect'; location: string }
  | { kind: 'body'; status: 200 | 206; size?: number; body: AsyncIterable<Uint8Array> };

export interface UpstreamClient {
  headManifest(target: CacheTarget, reference: string): Promise<UpstreamManifestHead>;
  getManifest(target: CacheTarget, reference: string): Promise<UpstreamManifest>;
  headBlob(target: CacheTarget, digest: string): Promise<{ size: number; digest: string }>;
  /** followRedirects false: a 302/303/307 answer comes back as {kind:'redirect', location}; true: the client follows (dropping Authorization on another host). */
  getBlob(
    target: CacheTarget,
    digest: string,
    options: { followRedirects: boolean; rangeStart?: number; signal?: AbortSignal },
  ): Promise<UpstreamBlob>;
}

/** What `upstream test` reports: each step that worked, or the first that did not. */
export interface UpstreamProbe {
  reachableMs: number;
  /** The challenge `/v2/` answered with, if any: its scheme and realm host (never a token). */
  challenge?: { scheme: 'basic' | 'bearer'; realmHost?: string };
}

/** A manifest GET asks for every manifest type, whatever the client asked, so that a tag caches one answer. */
const MANIFEST_ACCEPT = [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest].join(', ');
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 3;
const TOKEN_CACHE_LIMIT = 500;
/** A token is dropped this long before it expires. */
const TOKEN_MARGIN_SECONDS = 15;
/** Docker's default when a token response gives no `expires_in`. */
const DEFAULT_TOKEN_SECONDS = 60;

export interface UpstreamClientOptions {
  /** The upstream's credentials when it has any (`credentials: 'basic'`). */
  credentials: (upstream: Upstream) => Promise<UpstreamCredentials | undefined>;
  logger: Logger;
  fetch?: typeof fetch;
  now?: () => number;
  /** Until the response headers arrive (default 5 s). */
  timeoutMs?: number;
  /** How long an upstream is skipped after a network error or a 5xx (default 30 s). */
  circuitMs?: number;
}

interface SendOptions {
  method: 'GET' | 'HEAD';
  accept?: string;
  range?: string;
  followRedirects: boolean;
  signal?: AbortSignal;
}

/**
 * The registry's HTTP client of upstream registries (docs/pull-through.md): anonymous first, then
 * the upstream's own challenge (Basic, or the Docker token flow with tokens reused until they
 * expire), redirects followed for manifests (Authorization only to the host it was meant for), a
 * circuit breaker per upstream, and one log line per request with no query, header, token or
 * credential in it.
 */
export class HttpUpstreamClient implements UpstreamClient {
  private readonly tokens = new Map<string, { token: string; until: number }>();
  /** Upstreams (by name and host) known to want Basic: sent at once, without the anonymous try. */
  private readonly basicHosts = new Set<string>();
  private readonly openUntil = new Map<string, number>();
  private readonly fetch: typeof fetch;
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private readonly circuitMs: number;

  constructor(private readonly options: UpstreamClientOptions) {
    this.fetch = options.fetch ?? globalThis.fetch;
    this.now = options.now ?? Date.now;
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.circuitMs = options.circuitMs ?? 30_000;
  }

  async headManifest(target: CacheTarget, reference: string): Promise<UpstreamManifestHead> {
    const response = await this.send(target, `manifests/${reference}`, { method: 'HEAD', accept: MANIFEST_ACCEPT, followRedirects: true });
    const digest = response.headers.get('docker-content-digest') ?? undefined;
    return {
      ...(digest && parseDigest(digest) ? { digest } : {}),
      mediaType: mediaTypeOf(response),
      size: Number(response.headers.get('content-length') ?? 0),
    };
  }

  async getManifest(target: CacheTarget, reference: string): Promise<UpstreamManifest> {
    const response = await this.send(target, `manifests/${reference}`, { method: 'GET', accept: MANIFEST_ACCEPT, followRedirects: true });
    const bytes = await boundedBytes(response, MAX_MANIFEST_BYTES, target.upstream.name);
    const expected = parseDigest(reference) ? reference : (response.headers.get('docker-content-digest') ?? undefined);
    const algorithm = (expected && parseDigest(expected)?.algorithm) || 'sha256';
    const digest = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
    if (expected && parseDigest(expected) && expected !== digest) {
      throw new UpstreamError('corrupt', target.upstream.name, `upstream ${target.upstream.name} served bytes of ${digest} for ${expected}`);
    }
    return { digest, mediaType: mediaTypeOf(response), bytes };
  }

  async headBlob(target: CacheTarget, digest: string): Promise<{ size: number; digest: string }> {
    const response = await this.send(target, `blobs/${digest}`, { method: 'HEAD', followRedirects: true });
    return { size: Number(response.headers.get('content-length') ?? 0), digest: response.headers.get('docker-content-digest') ?? digest };
  }

  async getBlob(
    target: CacheTarget,
    digest: string,
    options: { followRedirects: boolean; rangeStart?: number; signal?: AbortSignal },
  ): Promise<UpstreamBlob> {
    const response = await this.send(target, `blobs/${digest}`, {
      method: 'GET',
      followRedirects: options.followRedirects,
      range: options.rangeStart ? `bytes=${options.rangeStart}-` : undefined,
      signal: options.signal,
    });
    if (REDIRECTS.has(response.status)) {
      await response.body?.cancel();
      return { kind: 'redirect', location: response.headers.get('location')! };
    }
    const length = response.headers.get('content-length');
    return {
      kind: 'body',
      status: response.status === 206 ? 206 : 200,
      ...(length === null ? {} : { size: Number(length) }),
      body: (response.body ?? emptyBody()) as AsyncIterable<Uint8Array>,
    };
  }

  /** `/v2/` of the upstream with its credentials, for `upstream test`: reachability and what it challenges with. */
  async probe(upstream: Upstream): Promise<UpstreamProbe> {
    const started = this.now();
    const target: CacheTarget = { upstream, upstreamPath: '' };
    const url = `${upstream.url}/v2/`;
    const first = await this.fetchOnce(target, url, { method: 'GET', followRedirects: false }, undefined);
    const reachableMs = this.now() - started;
    const challenge = first.status === 401 ? parseChallenge(first.headers.get('www-authenticate')) : undefined;
    await first.body?.cancel();
    if (first.status === 401) await this.send(target, '', { method: 'GET', followRedirects: true }, '/v2/');
    else if (first.status >= 400) throw this.failure(target, first.status, first.headers, 'GET', '/v2/');
    return {
      reachableMs,
      ...(challenge ? { challenge: { scheme: challenge.scheme, ...(challenge.realm ? { realmHost: hostOf(challenge.realm) } : {}) } } : {}),
    };
  }

  /**
   * One request to the upstream, authenticated as it asks, following redirects when told to
   * (at most MAX_REDIRECTS; Authorization only to the upstream's own host); answers a 2xx (or
   * a 3xx when not following) and throws UpstreamError for anything else.
   */
  private async send(target: CacheTarget, resource: string, options: SendOptions, fullPath?: string): Promise<Response> {
    const { upstream } = target;
    const openUntil = this.openUntil.get(upstream.name);
    if (openUntil !== undefined && this.now() < openUntil) {
      throw new UpstreamError(
        'unavailable',
        upstream.name,
        `upstream ${upstream.name} failed recently; not asked again for ${this.circuitMs / 1000} s`,
      );
    }
    const path = fullPath ?? `/v2/${target.upstreamPath}/${resource}`;
    let url = `${upstream.url}${path}`;
    for (let hop = 0; ; hop++) {
      const response = await this.authenticated(target, url, options);
      if (REDIRECTS.has(response.status) && response.headers.get('location')) {
        if (!options.followRedirects) return response;
        await response.body?.cancel();
        if (hop === MAX_REDIRECTS) throw new UpstreamError('unavailable', upstream.name, `upstream ${upstream.name} redirected ${path} too often`);
        url = new URL(response.headers.get('location')!, url).toString();
        continue;
      }
      if (response.status >= 200 && response.status < 300) return response;
      await response.body?.cancel();
      throw this.failure(target, response.status, response.headers, options.method, path);
    }
  }

  /** The request with what the host last asked for (a token, Basic), and once more after a challenge. */
  private async authenticated(target: CacheTarget, url: string, options: SendOptions): Promise<Response> {
    const { upstream } = target;
    const host = new URL(url).host;
    const ownHost = host === new URL(upstream.url).host;
    // `/v2/` itself (upstream test) asks for a token of no repository.
    const scope = target.upstreamPath ? `repository:${target.upstreamPath}:pull` : '';
    let authorization: string | undefined;
    if (ownHost) {
      authorization = this.cachedToken(upstream, host, scope);
      if (!authorization && this.basicHosts.has(`${upstream.name} ${host}`)) authorization = await this.basic(upstream);
    }
    const response = await this.fetchOnce(target, url, options, authorization);
    if (response.status !== 401) return response;
    const challenge = parseChallenge(response.headers.get('www-authenticate'));
    if (!challenge) return response;
    await response.body?.cancel();
    if (challenge.scheme === 'basic') {
      const basic = await this.basic(upstream);
      if (!basic || !ownHost) throw this.refused(upstream, 'asks for credentials (Basic) and none are configured');
      this.basicHosts.add(`${upstream.name} ${host}`);
      return this.fetchOnce(target, url, options, basic);
    }
    const token = await this.token(target, challenge, host, scope);
    return this.fetchOnce(target, url, options, `Bearer ${token}`);
  }

  private async basic(upstream: Upstream): Promise<string | undefined> {
    if (upstream.credentials !== 'basic') return undefined;
    return (await this.options.credentials(upstream))?.basicAuthorization();
  }

  private tokenKey(upstream: Upstream, host: string, scope: string): string {
    return `${upstream.name} ${upstream.credentialsVersion} ${host} ${scope}`;
  }

  private cachedToken(upstream: Upstream, host: string, scope: string): string | undefined {
    const key = this.tokenKey(upstream, host, scope);
    const cached = this.tokens.get(key);
    if (!cached) return undefined;
    if (this.now() >= cached.until) {
      this.tokens.delete(key);
      return undefined;
    }
    return `Bearer ${cached.token}`;
  }

  /** The Docker token flow against the challenge's realm, with the upstream's credentials when it has any. */
  private async token(target: CacheTarget, challenge: Extract<Challenge, { scheme: 'bearer' }>, host: string, scope: string): Promise<string> {
    const { upstream } = target;
    let realm: URL;
    try {
      realm = new URL(challenge.realm);
    } catch {
      throw new UpstreamError('unavailable', upstream.name, `upstream ${upstream.name} challenged with an invalid token realm`);
    }
    const upstreamUrl = new URL(upstream.url);
    if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && upstreamUrl.protocol === 'http:' && isLoopbackHost(upstreamUrl.hostname))) {
      throw new UpstreamError('unavailable', upstream.name, `upstream ${upstream.name} sends its token realm over plain http: refused`);
    }
    if (challenge.service !== undefined) realm.searchParams.set('service', challenge.service);
    // The path's own scope, not the challenge's: one token per repository serves every request in it.
    if (scope) realm.searchParams.set('scope', scope);
    const basic = await this.basic(upstream);
    const started = this.now();
    let response: Response;
    try {
      response = await this.fetch(realm, {
        headers: basic ? { authorization: basic } : {},
        redirect: 'follow',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw this.unreachable(upstream, error);
    }
    this.log(upstream, 'GET', `token ${realm.host}${realm.pathname}`, response.status, started);
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      throw this.refused(upstream, basic ? 'refused the credentials at its token endpoint' : 'refused an anonymous token');
    }
    if (response.status === 429) throw this.failure(target, 429, response.headers, 'GET', 'token');
    if (!response.ok) {
      await response.body?.cancel();
      throw new UpstreamError('unavailable', upstream.name, `upstream ${upstream.name} token endpoint answered ${response.status}`, {
        status: response.status,
      });
    }
    const body = (await response.json().catch(() => ({}))) as { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new UpstreamError('unavailable', upstream.name, `upstream ${upstream.name} token endpoint sent no token`);
    const issued = body.issued_at ? Date.parse(body.issued_at) : Number.NaN;
    const from = Number.isFinite(issued) ? Math.min(issued, this.now()) : this.now();
    const seconds = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS;
    const key = this.tokenKey(upstream, host, scope);
    this.tokens.delete(key);
    this.tokens.set(key, { token, until: from + (seconds - TOKEN_MARGIN_SECONDS) * 1000 });
    while (this.tokens.size > TOKEN_CACHE_LIMIT) this.tokens.delete(this.tokens.keys().next().value!);
    return token;
  }

  /** One HTTP exchange, with a timeout until the headers arrive; network failures open the circuit. */
  private async fetchOnce(target: CacheTarget, url: string, options: SendOptions, authorization: string | undefined): Promise<Response> {
    const { upstream } = target;
    const headers: Record<string, string> = {};
    if (authorization) headers.authorization = authorization;
    if (options.accept) headers.accept = options.accept;
    if (options.range) headers.range = options.range;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new Error('timeout')), this.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout.signal]) : timeout.signal;
    const started = this.now();
    const parsed = new URL(url);
    try {
      const response = await this.fetch(url, { method: options.method, headers, redirect: 'manual', signal });
      this.log(
        upstream,
        options.method,
        parsed.host === new URL(upstream.url).host ? parsed.pathname : `${parsed.host} (redirect)`,
        response.status,
        started,
      );
      if (response.status >= 500) this.openUntil.set(upstream.name, this.now() + this.circuitMs);
      else this.openUntil.delete(upstream.name);
      if (response.status === 401 && authorization?.startsWith('Bearer ')) {
        // A token the upstream no longer takes: forget it, so the next request asks for a new one.
        for (const [key, value] of this.tokens) if (`Bearer ${value.token}` === authorization) this.tokens.delete(key);
      }
      return response;
    } catch (error) {
      if (options.signal?.aborted) throw error;
      this.log(upstream, options.method, parsed.host === new URL(upstream.url).host ? parsed.pathname : `${parsed.host} (redirect)`, 0, started);
      throw this.unreachable(upstream, error);
    } finally {
      clearTimeout(timer);
    }
  }

  private unreachable(upstream: Upstream, error: unknown): UpstreamError {
    this.openUntil.set(upstream.name, this.now() + this.circuitMs);
    const reason = (error as Error).message === 'timeout' || (error as Error).name === 'TimeoutError' ? 'timed out' : 'is unreachable';
    return new UpstreamError('unavailable', upstream.name, `upstream ${upstream.name} ${reason}`);
  }

  private refused(upstream: Upstream, what: string): UpstreamError {
    return new UpstreamError('refused', upstream.name, `upstream ${upstream.name} ${what}`);
  }

  private failure(target: CacheTarget, status: number, headers: Headers, method: string, path: string): UpstreamError {
    const name = target.upstream.name;
    if (status === 404) return new UpstreamError('notFound', name, `upstream ${name} has no ${path.replace(/^\/v2\//, '')}`, { status });
    if (status === 401 || status === 403) {
      return new UpstreamError(
        'refused',
        name,
        `upstream ${name} refused ${method} ${path.replace(/^\/v2\//, '')} (${status}): it does not exist there or needs credentials`,
        {
          status,
        },
      );
    }
    if (status === 429) {
      const retryAfter = Number(headers.get('retry-after'));
      return new UpstreamError('tooManyRequests', name, `upstream ${name} is rate limiting the registry (429)`, {
        status,
        ...(Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterSeconds: Math.ceil(retryAfter) } : {}),
      });
    }
    return new UpstreamError('unavailable', name, `upstream ${name} answered ${status}`, { status });
  }

  private log(upstream: Upstream, method: string, path: string, status: number, started: number): void {
    this.options.logger.info('upstream request', { upstream: upstream.name, method, path, status, ms: this.now() - started });
  }
}

function mediaTypeOf(response: Response): string {
  return (response.headers.get('content-type') ?? MediaType.ociManifest).split(';')[0]!.trim();
}

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).host;
  } catch {
    return undefined;
  }
}

async function* emptyBody(): AsyncIterable<Uint8Array> {}

/** The body, refused past `limit` bytes (a manifest is at most 4 MiB). */
async function boundedBytes(response: Response, limit: number, upstream: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of (response.body ?? emptyBody()) as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > limit) throw new UpstreamError('corrupt', upstream, `upstream ${upstream} sent a manifest over ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
