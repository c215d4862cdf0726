/**
 * The registry side of the push command: Docker token login, blob and manifest requests, and
 * the direct-upload extension (docs/direct-push.md). Requests are retried with backoff on
 * network errors, 429 and 5xx, and once with a fresh token on 401. The Authorization header
 * goes to the registry's own origin only: never to S3, nor to an upload gateway (whose
 * Locations carry their own ticket).
 */
import {
  type HttpClient,
  NetworkError,
  PermanentNetworkError,
  RetryableError,
  redact,
  withRetries,
  type HttpResponse,
  type RetryOptions,
} from './http.js';
import type { BlobSource } from './sources.js';

export interface Credentials {
  username: string;
  password: string;
}

/** An error answer of the registry, with its OCI error code when it sent one. */
export class RegistryApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'RegistryApiError';
  }
}

export interface UploadSession {
  uuid: string;
  /** Absolute: on the registry, or on an upload gateway. */
  location: URL;
}

export interface DirectPart {
  partNumber: number;
  offset: number;
  size: number;
  url: string;
}

export interface DirectPlan {
  partSize: number;
  partCount: number;
  parts: DirectPart[];
  /** Epoch ms. */
  expiresAt: number;
}

export type DirectStatus =
  | { state: 'complete' }
  | { state: 'verifying'; verified: number; size: number; retryAfterSeconds: number }
  | { state: 'parts' };

export interface RegistryClientOptions {
  /** `host[:port]`. */
  registry: string;
  name: string;
  insecureHttp: boolean;
  credentials?: Credentials;
  /** Repositories to ask pull access on too, to mount blobs from them. */
  mountFrom: string[];
  http: HttpClient;
  retry: RetryOptions;
}

type Auth =
  | { kind: 'none' }
  | { kind: 'basic'; header: string }
  | { kind: 'bearer'; realm: string; service?: string; token?: string; expiresAt: number };

interface CallOptions {
  headers?: Record<string, string>;
  body?: () => import('node:stream').Readable | Buffer;
  contentLength?: number;
  onSent?: (bytes: number) => void;
}

export class RegistryClient {
  readonly base: URL;
  private auth: Auth = { kind: 'none' };

  constructor(private readonly options: RegistryClientOptions) {
    this.base = new URL(`${options.insecureHttp ? 'http' : 'https'}://${options.registry}`);
  }

  get name(): string {
    return this.options.name;
  }

  /** Follows the challenge of `GET /v2/`: none (an open registry), Basic, or a Docker token. */
  async login(): Promise<'open' | 'basic' | 'token'> {
    const probe = await this.send('GET', '/v2/', {}, false);
    if (probe.status === 200) return 'open';
    if (probe.status !== 401) throw await this.failure(probe, 'GET /v2/');
    const challenge = parseChallenge(header(probe, 'www-authenticate') ?? '');
    if (challenge?.scheme === 'basic') {
      if (!this.options.credentials) throw new Error(`${this.options.registry} wants a username and password (--username, --password-stdin)`);
      const { username, password } = this.options.credentials;
      this.auth = { kind: 'basic', header: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` };
    } else if (challenge?.scheme === 'bearer' && challenge.params.realm) {
      this.auth = { kind: 'bearer', realm: challenge.params.realm, service: challenge.params.service, expiresAt: 0 };
      await this.fetchToken();
    } else {
      throw new Error(`${this.options.registry} answered 401 without a challenge this client understands`);
    }
    const check = await this.send('GET', '/v2/');
    if (check.status !== 200) throw await this.failure(check, 'login');
    return this.auth.kind === 'basic' ? 'basic' : 'token';
  }

  async blobExists(digest: string): Promise<boolean> {
    const response = await this.send('HEAD', `/v2/${this.name}/blobs/${digest}`);
    if (response.status === 200) return true;
    if (response.status === 404) return false;
    throw await this.failure(response, `HEAD blob ${digest}`);
  }

  /** Mounts the blob from `from`: true when the registry did, else the upload session it opened instead. */
  async mount(digest: string, from: string): Promise<true | UploadSession> {
    const query = new URLSearchParams({ mount: digest, from });
    const response = await this.send('POST', `/v2/${this.name}/blobs/uploads/?${query}`);
    if (response.status === 201) return true;
    if (response.status === 202) return this.sessionOf(response);
    throw await this.failure(response, `mount ${digest} from ${from}`);
  }

  async openSession(): Promise<UploadSession> {
    const response = await this.send('POST', `/v2/${this.name}/blobs/uploads/`);
    if (response.status !== 202) throw await this.failure(response, 'open an upload');
    return this.sessionOf(response);
  }

  async cancel(session: UploadSession): Promise<void> {
    await this.send('DELETE', session.location).catch(() => undefined);
  }

  /** The whole blob in one POST (end-4b); a registry that opens a session instead gets the blob in a PUT there. */
  async postWhole(blob: BlobSource, onSent: (bytes: number) => void): Promise<void> {
    const response = await this.send('POST', `/v2/${this.name}/blobs/uploads/?digest=${blob.digest}`, this.blobBody(blob, onSent));
    if (response.status === 201) return this.checkDigest(response, blob.digest);
    if (response.status === 202) return this.putWhole(await this.sessionOf(response), blob, onSent);
    throw await this.failure(response, `upload ${blob.digest}`);
  }

  /** The whole blob in the PUT that closes the session (what containerd does). */
  async putWhole(session: UploadSession, blob: BlobSource, onSent: (bytes: number) => void): Promise<void> {
    const url = new URL(session.location);
    url.searchParams.set('digest', blob.digest);
    const response = await this.send('PUT', url, this.blobBody(blob, onSent));
    if (response.status !== 201) throw await this.failure(response, `upload ${blob.digest}`);
    this.checkDigest(response, blob.digest);
  }

  /** Starts a direct upload on the session; undefined when the registry does not have the extension. */
  async startDirect(session: UploadSession, blob: BlobSource, partSize: number): Promise<DirectPlan | undefined> {
    const query = new URLSearchParams({ digest: blob.digest, size: String(blob.size), partSize: String(partSize) });
    const response = await this.send('POST', `${this.directPath(session)}?${query}`);
    if (response.status === 404 || response.status === 405) {
      const code = errorCodeOf(response);
      if (code === undefined || code === 'UNSUPPORTED') return undefined;
    }
    if (response.status !== 200) throw await this.failure(response, `start a direct upload of ${blob.digest}`);
    const plan = JSON.parse(response.body.toString('utf8')) as { partSize: number; partCount: number; parts: DirectPart[]; expiresAt: string };
    return { partSize: plan.partSize, partCount: plan.partCount, parts: plan.parts, expiresAt: Date.parse(plan.expiresAt) };
  }

  async directPartUrls(session: UploadSession, parts: string): Promise<{ parts: DirectPart[]; expiresAt: number }> {
    const response = await this.send('GET', `${this.directPath(session)}/parts?parts=${parts}`);
    if (response.status !== 200) throw await this.failure(response, 'renew part URLs');
    const answer = JSON.parse(response.body.toString('utf8')) as { parts: DirectPart[]; expiresAt: string };
    return { parts: answer.parts, expiresAt: Date.parse(answer.expiresAt) };
  }

  async completeDirect(session: UploadSession, etags: string[]): Promise<DirectStatus> {
    const body = Buffer.from(JSON.stringify({ parts: etags.map((etag, index) => ({ partNumber: index + 1, etag })) }));
    const response = await this.send('PUT', this.directPath(session), { headers: { 'Content-Type': 'application/json' }, body: () => body });
    return this.directStatus(response, 'complete the direct upload');
  }

  async pollDirect(session: UploadSession): Promise<DirectStatus> {
    return this.directStatus(await this.send('GET', this.directPath(session)), 'poll the direct upload');
  }

  async manifestExists(digest: string): Promise<boolean> {
    const response = await this.send('HEAD', `/v2/${this.name}/manifests/${digest}`);
    if (response.status === 200) return true;
    if (response.status === 404) return false;
    throw await this.failure(response, `HEAD manifest ${digest}`);
  }

  async putManifest(reference: string, mediaType: string, bytes: Buffer): Promise<string | undefined> {
    const response = await this.send('PUT', `/v2/${this.name}/manifests/${reference}`, { headers: { 'Content-Type': mediaType }, body: () => bytes });
    if (response.status !== 201 && response.status !== 200) throw await this.failure(response, `PUT manifest ${reference}`);
    return header(response, 'docker-content-digest');
  }

  /** One request, authorised like the others, whose answer the caller judges (`npm run doctor`). */
  request(method: string, target: string | URL, options: { headers?: Record<string, string>; body?: Buffer } = {}): Promise<HttpResponse> {
    const body = options.body;
    return this.send(method, target, { headers: options.headers, body: body && (() => body) });
  }

  private directPath(session: UploadSession): string {
    return `/v2/${this.name}/blobs/uploads/${session.uuid}/direct`;
  }

  private async directStatus(response: HttpResponse, what: string): Promise<DirectStatus> {
    if (response.status === 201) return { state: 'complete' };
    if (response.status === 202) {
      const answer = JSON.parse(response.body.toString('utf8')) as { verified: number; size: number };
      return {
        state: 'verifying',
        verified: answer.verified,
        size: answer.size,
        retryAfterSeconds: Number(header(response, 'retry-after') ?? 1) || 0,
      };
    }
    if (response.status === 200) return { state: 'parts' };
    throw await this.failure(response, what);
  }

  private blobBody(blob: BlobSource, onSent: (bytes: number) => void): CallOptions {
    return { headers: { 'Content-Type': 'application/octet-stream' }, body: () => blob.open(), contentLength: blob.size, onSent };
  }

  private checkDigest(response: HttpResponse, digest: string): void {
    const answered = header(response, 'docker-content-digest');
    if (answered !== undefined && answered !== digest) throw new Error(`the registry stored ${answered} for ${digest}`);
  }

  private sessionOf(response: HttpResponse): UploadSession {
    const location = header(response, 'location');
    if (!location) throw new Error('the registry opened an upload without a Location');
    const url = new URL(location, this.base);
    const uuid = header(response, 'docker-upload-uuid') ?? url.pathname.split('/').filter(Boolean).pop()!;
    return { uuid, location: url };
  }

  /**
   * One request with retries. Answers whatever the registry answered last (error statuses
   * included), except that network errors, 429 and 5xx are retried first.
   */
  private async send(method: string, target: string | URL, call: CallOptions = {}, authenticate = true): Promise<HttpResponse> {
    const url = target instanceof URL ? target : new URL(target, this.base);
    const own = url.origin === this.base.origin;
    let refreshed = false;
    return withRetries(async () => {
      const headers: Record<string, string> = { ...call.headers };
      if (own && authenticate) Object.assign(headers, await this.authorization());
      let sent = 0;
      let response: HttpResponse;
      try {
        response = await this.options.http.request({
          method,
          url,
          headers,
          body: call.body,
          contentLength: call.contentLength,
          onSent:
            call.onSent &&
            ((bytes) => {
              sent += bytes;
              call.onSent!(bytes);
            }),
        });
      } catch (error) {
        call.onSent?.(-sent);
        throw error;
      }
      if (response.status === 401 && own && authenticate && this.auth.kind === 'bearer' && !refreshed) {
        // The token expired or lacks a scope: fetch a fresh one and go again at once.
        refreshed = true;
        call.onSent?.(-sent);
        this.auth.expiresAt = 0;
        throw new RetryableError('token refused', 0);
      }
      if (response.status === 429 || response.status >= 500) {
        call.onSent?.(-sent);
        const retryAfter = Number(header(response, 'retry-after'));
        throw new RetryableError(
          `${method} ${redact(url)}: ${response.status} ${summary(response)}`,
          Number.isFinite(retryAfter) ? retryAfter : undefined,
        );
      }
      return response;
    }, this.options.retry).catch((error: unknown) => {
      if (error instanceof PermanentNetworkError) throw new Error(error.message);
      if (error instanceof RetryableError || error instanceof NetworkError)
        throw new Error(`${method} ${redact(url)} failed after ${this.options.retry.attempts} attempts: ${error.message}`);
      throw error;
    });
  }

  private async authorization(): Promise<Record<string, string>> {
    const auth = this.auth;
    if (auth.kind === 'basic') return { Authorization: auth.header };
    if (auth.kind === 'bearer') {
      if (!auth.token || auth.expiresAt - Date.now() < 30_000) await this.fetchToken();
      return { Authorization: `Bearer ${auth.token}` };
    }
    return {};
  }

  private async fetchToken(): Promise<void> {
    const auth = this.auth;
    if (auth.kind !== 'bearer') return;
    const url = new URL(auth.realm);
    if (auth.service) url.searchParams.set('service', auth.service);
    url.searchParams.append('scope', `repository:${this.name}:pull,push`);
    for (const from of this.options.mountFrom) url.searchParams.append('scope', `repository:${from}:pull`);
    const headers: Record<string, string> = {};
    if (this.options.credentials) {
      const { username, password } = this.options.credentials;
      url.searchParams.set('account', username);
      headers.Authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    }
    const response = await withRetries(async () => {
      const answer = await this.options.http.request({ method: 'GET', url, headers });
      if (answer.status === 429 || answer.status >= 500) throw new RetryableError(`token endpoint: ${answer.status}`);
      return answer;
    }, this.options.retry);
    if (response.status === 401 || response.status === 403) {
      throw new Error(
        `login to ${this.options.registry} failed: ${summary(response)}${this.options.credentials ? '' : ' (no credentials given: --username, --password-stdin)'}`,
      );
    }
    if (response.status !== 200) throw await this.failure(response, 'token request');
    const answer = JSON.parse(response.body.toString('utf8')) as { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    const token = answer.token ?? answer.access_token;
    if (!token) throw new Error('the token endpoint answered no token');
    auth.token = token;
    auth.expiresAt = Date.now() + Math.max(60, answer.expires_in ?? 60) * 1000;
  }

  private async failure(response: HttpResponse, what: string): Promise<RegistryApiError> {
    let hint = '';
    if (response.status === 401)
      hint = this.options.credentials
        ? ` (${this.options.credentials.username} may not push to ${this.name})`
        : ' (log in: --username, --password-stdin)';
    if (response.status === 403) hint = ` (the account may not push to ${this.name})`;
    return new RegistryApiError(response.status, errorCodeOf(response), `${what}: ${response.status} ${summary(response)}${hint}`);
  }
}

function header(response: HttpResponse, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function errorCodeOf(response: HttpResponse): string | undefined {
  try {
    return (JSON.parse(response.body.toString('utf8')) as { errors?: Array<{ code?: string }> }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}

/** The registry's error code and message, or the start of whatever it said. */
function summary(response: HttpResponse): string {
  const text = response.body.toString('utf8');
  try {
    const error = (JSON.parse(text) as { errors?: Array<{ code?: string; message?: string; detail?: unknown }> }).errors?.[0];
    if (error) return `${error.code}: ${error.message}${error.detail === undefined ? '' : ` ${JSON.stringify(error.detail)}`}`;
  } catch {
    // not JSON
  }
  return text.slice(0, 300).trim() || '(no body)';
}

/** `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`. */
export function parseChallenge(value: string): { scheme: string; params: Record<string, string> } | undefined {
  const match = /^\s*(\w+)\s*(.*)$/.exec(value);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  for (const param of match[2]!.matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[param[1]!.toLowerCase()] = param[2] ?? param[3] ?? '';
  return { scheme: match[1]!.toLowerCase(), params };
}
