/**
 * A small HTTP client on node:http(s) for the push command: keep-alive connections, request
 * bodies streamed from disk with an exact Content-Length (S3 refuses chunked part uploads), and
 * answers read whole (they are small: JSON, empty, or an error).
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  /** Called for each attempt, so that a retry sends the body again from its start. */
  body?: () => Readable | Buffer;
  /** Required with a streamed body. */
  contentLength?: number;
  /** Told how many body bytes went out, as they go (for progress). */
  onSent?: (bytes: number) => void;
  /** Gives up when nothing moves for this long. */
  idleTimeoutMs?: number;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** No answer at all: the connection failed, was cut or went idle. Worth a retry. */
export class NetworkError extends Error {
  constructor(
    message: string,
    readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'NetworkError';
  }
}

/**
 * A connection that no retry can mend: a TLS handshake answered in plain HTTP, a certificate
 * the client does not trust, a host name that does not resolve, nothing listening on the port.
 * The message says what to do instead.
 */
export class PermanentNetworkError extends NetworkError {
  constructor(message: string, cause?: unknown) {
    super(message, cause);
    this.name = 'PermanentNetworkError';
  }
}

const CERTIFICATE_ERRORS =
  /^(CERT_|ERR_TLS_CERT|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(GET_ISSUER_CERT|VERIFY_LEAF_SIGNATURE))/;

/** What a failed connection means for the user, and whether trying again can help. */
export function connectionError(method: string, url: URL, error: Error): NetworkError {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  const where = `${method} ${redact(url)}`;
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long/.test(error.message)) {
    return new PermanentNetworkError(
      `${url.host} answered a TLS handshake in plain HTTP: it does not serve HTTPS; add --insecure-http to talk plain HTTP to it`,
      error,
    );
  }
  if (CERTIFICATE_ERRORS.test(code)) {
    return new PermanentNetworkError(
      `${url.host}: its TLS certificate is not trusted (${code}); give Node the CA with NODE_EXTRA_CA_CERTS=<ca.pem>`,
      error,
    );
  }
  if (code === 'ENOTFOUND') return new PermanentNetworkError(`${url.hostname} does not resolve: check the registry host name`, error);
  if (code === 'ECONNREFUSED') {
    return new PermanentNetworkError(`nothing is listening on ${url.host}: is the registry running (npm start), and is the port right?`, error);
  }
  return new NetworkError(`${where}: ${error.message}`, error);
}

/** Answers are small; a bigger one is a mistake (or not a registry), not something to buffer. */
const MAX_ANSWER_BYTES = 8 * 1024 * 1024;

export class HttpClient {
  private readonly http: HttpAgent;
  private readonly https: HttpsAgent;

  constructor(maxSockets: number) {
    this.http = new HttpAgent({ keepAlive: true, maxSockets });
    this.https = new HttpsAgent({ keepAlive: true, maxSockets });
  }

  request(options: HttpRequest): Promise<HttpResponse> {
    const { url } = options;
    const secure = url.protocol === 'https:';
    const headers: Record<string, string> = { ...options.headers };
    const payload = options.body?.();
    if (Buffer.isBuffer(payload)) headers['Content-Length'] = String(payload.length);
    else if (payload) headers['Content-Length'] = String(options.contentLength ?? fail('a streamed body needs a content length'));
    else if (options.method === 'PUT' || options.method === 'POST' || options.method === 'PATCH') headers['Content-Length'] = '0';

    return new Promise<HttpResponse>((resolve, reject) => {
      let settled = false;
      const finish = (error: Error | undefined, response?: HttpResponse) => {
        if (settled) return;
        settled = true;
        if (payload && !Buffer.isBuffer(payload)) payload.destroy();
        if (error) reject(error);
        else resolve(response!);
      };
      const request = (secure ? httpsRequest : httpRequest)(
        url,
        { method: options.method, headers, agent: secure ? this.https : this.http },
        (response) => {
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_ANSWER_BYTES) {
              response.destroy();
              finish(new Error(`${options.method} ${redact(url)} answered more than ${MAX_ANSWER_BYTES} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          response.on('end', () => finish(undefined, { status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }));
          response.on('error', (error) => finish(connectionError(options.method, url, error)));
        },
      );
      request.setTimeout(options.idleTimeoutMs ?? 120_000, () => request.destroy(new Error('no progress for too long')));
      request.on('error', (error) => finish(connectionError(options.method, url, error)));
      if (!payload) request.end();
      else if (Buffer.isBuffer(payload)) {
        request.end(payload);
        options.onSent?.(payload.length);
      } else {
        payload.on('error', (error) => {
          request.destroy(error);
          finish(error);
        });
        if (options.onSent) payload.on('data', (chunk: Buffer) => options.onSent!(chunk.length));
        payload.pipe(request);
      }
    });
  }

  close(): void {
    this.http.destroy();
    this.https.destroy();
  }
}

/** A URL for messages: presigned URLs and upload tickets are credentials, so the query goes. */
export function redact(url: URL): string {
  return `${url.origin}${url.pathname}${url.search ? '?…' : ''}`;
}

function fail(message: string): never {
  throw new Error(message);
}

export interface RetryOptions {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Told before each wait, e.g. to log it. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/** Errors worth another attempt: the network, 5xx, 429, and what the caller marks as such. */
export class RetryableError extends Error {
  constructor(
    message: string,
    /** Seconds the server asked to wait. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'RetryableError';
  }
}

export function isRetryable(error: unknown): boolean {
  if (error instanceof PermanentNetworkError) return false;
  return error instanceof NetworkError || error instanceof RetryableError;
}

/** Exponential backoff with full jitter: base, 2·base, 4·base … capped, times a random factor in [0.5, 1]. */
export function backoffDelay(attempt: number, baseDelayMs: number, maxDelayMs: number, random = Math.random): number {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
  return Math.round(ceiling * (0.5 + random() / 2));
}

export async function withRetries<T>(action: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await action(attempt);
    } catch (error) {
      if (attempt >= options.attempts || !isRetryable(error)) throw error;
      const asked = error instanceof RetryableError && error.retryAfterSeconds !== undefined ? error.retryAfterSeconds * 1000 : 0;
      const delay = Math.max(asked, backoffDelay(attempt, options.baseDelayMs, options.maxDelayMs));
      options.onRetry?.(error, attempt, delay);
      await sleep(delay);
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
