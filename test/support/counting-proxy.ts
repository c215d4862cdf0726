/**
 * An HTTP proxy in front of a test upstream registry that counts what the registry under
 * test asks for (`METHOD path`, without the query) and can misbehave on demand: stop and
 * start on the same port, answer every request with 503 or 429, flip a byte of one digest's
 * body, delay each answer, slow blob bodies down, and answer blob GETs with
 * `307 /_cdn/<digest>?t=<ticket>` served by itself, as Docker Hub and GHCR redirect blob
 * GETs to a CDN with a short-lived capability URL. Bodies are streamed, never buffered.
 */
import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeServer } from './upstream-registry.js';

export interface ProxiedRequest {
  method: string;
  /** The path without its query (the `/_cdn/` path for a followed redirect). */
  path: string;
  range?: string;
  status: number;
  /** Whether the request carried an Authorization header (its value is never kept). */
  authorized: boolean;
}

export interface CountingProxy {
  url: string;
  port: number;
  /** Every request answered since the start or the last reset, in order. */
  requests: ProxiedRequest[];
  /** How many requests were `METHOD path` (e.g. `GET /v2/hub/app/blobs/sha256:...`). */
  count(methodAndPath: string): number;
  /** How many requests' `METHOD path` match `pattern`. */
  countMatching(pattern: RegExp): number;
  reset(): void;
  /** Answers every request with this status (503, 429 with Retry-After: 1) until called with undefined. */
  failWith(status: 503 | 429 | undefined): void;
  /** Flips one byte of every body served for this blob digest (undefined: stop). */
  corrupt(digest: string | undefined): void;
  /** Waits this long before forwarding each request. */
  delay(ms: number): void;
  /** Sends blob bodies at most this fast (undefined: as fast as they come). */
  throttle(bytesPerSecond: number | undefined): void;
  /** Blob GETs answer `307 /_cdn/<digest>?t=<ticket>` (served by the proxy itself) instead of the bytes. */
  redirectBlobs(on: boolean): void;
  /** Stops listening and drops open connections (the port stays reserved for start()). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

const BLOB_PATH = /^\/v2\/(.+)\/blobs\/([a-z0-9]+:[a-f0-9]+)$/;
const CDN_PATH = /^\/_cdn\/([a-z0-9]+:[a-f0-9]+)$/;
/** How long a `/_cdn/` ticket stays valid, like the minutes a real CDN URL lives. */
const TICKET_MS = 5 * 60 * 1000;

interface Ticket {
  upstreamPath: string;
  authorization?: string;
  until: number;
}

export async function startCountingProxy(options: { target: string; port?: number }): Promise<CountingProxy> {
  const target = new URL(options.target);
  const requests: ProxiedRequest[] = [];
  const tickets = new Map<string, Ticket>();
  let failure: 503 | 429 | undefined;
  let corruptDigest: string | undefined;
  let delayMs = 0;
  let bytesPerSecond: number | undefined;
  let redirecting = false;

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', 'http://proxy');
    const method = request.method ?? 'GET';
    const record = (status: number) =>
      requests.push({
        method,
        path: url.pathname,
        status,
        authorized: request.headers.authorization !== undefined,
        ...(request.headers.range ? { range: request.headers.range } : {}),
      });
    if (delayMs > 0) await sleep(delayMs);
    if (failure) {
      record(failure);
      response.writeHead(failure, failure === 429 ? { 'retry-after': '1' } : {}).end();
      return;
    }

    let upstreamPath = `${url.pathname}${url.search}`;
    let authorization = request.headers.authorization;
    const cdn = CDN_PATH.exec(url.pathname);
    const digest = cdn?.[1] ?? BLOB_PATH.exec(url.pathname)?.[2];
    if (cdn) {
      const ticket = tickets.get(url.searchParams.get('t') ?? '');
      if (!ticket || ticket.until < Date.now() || !ticket.upstreamPath.endsWith(`/blobs/${cdn[1]}`)) {
        record(403);
        response.writeHead(403).end('expired or unknown ticket');
        return;
      }
      upstreamPath = ticket.upstreamPath;
      authorization = ticket.authorization;
    } else if (redirecting && digest && method === 'GET') {
      // The capability carries the caller's credentials, as a signed CDN URL does.
      const probe = await forward(target, 'HEAD', upstreamPath, { ...request.headers, host: target.host });
      probe.resume();
      if (probe.statusCode !== 200) {
        record(probe.statusCode ?? 502);
        response.writeHead(probe.statusCode ?? 502, pickHeaders(probe, ['www-authenticate', 'content-type'])).end();
        return;
      }
      const id = randomUUID();
      tickets.set(id, { upstreamPath, authorization, until: Date.now() + TICKET_MS });
      record(307);
      response.writeHead(307, { location: `/_cdn/${digest}?t=${id}`, 'content-length': '0' }).end();
      return;
    }

    const headers = { ...request.headers, host: target.host };
    if (authorization) headers.authorization = authorization;
    else delete headers.authorization;
    const upstream = await forward(target, method, upstreamPath, headers, request);
    const status = upstream.statusCode ?? 502;
    record(status);
    const blobBody = digest !== undefined && method === 'GET';
    const transforms: Transform[] = [];
    if (blobBody && digest === corruptDigest) transforms.push(flipFirstByte());
    if (blobBody && bytesPerSecond) transforms.push(throttled(bytesPerSecond));
    response.writeHead(status, upstream.headers);
    await pipeline([upstream, ...transforms, response]).catch(() => response.destroy());
  };

  let server: Server = createServer();
  const listen = (port: number) =>
    new Promise<Server>((resolve, reject) => {
      const next = createServer((request, response) => {
        handle(request, response).catch(() => {
          if (!response.headersSent) response.writeHead(502);
          response.end();
        });
      });
      next.once('error', reject);
      next.listen(port, '127.0.0.1', () => resolve(next));
    });
  server = await listen(options.port ?? 0);
  const port = (server.address() as AddressInfo).port;
  let listening = true;

  const matching = (predicate: (line: string) => boolean) => requests.filter((entry) => predicate(`${entry.method} ${entry.path}`)).length;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    count: (methodAndPath) => matching((line) => line === methodAndPath),
    countMatching: (pattern) => matching((line) => pattern.test(line)),
    reset: () => {
      requests.length = 0;
    },
    failWith: (status) => {
      failure = status;
    },
    corrupt: (value) => {
      corruptDigest = value;
    },
    delay: (ms) => {
      delayMs = ms;
    },
    throttle: (value) => {
      bytesPerSecond = value;
    },
    redirectBlobs: (on) => {
      redirecting = on;
    },
    stop: async () => {
      if (!listening) return;
      listening = false;
      await closeServer(server);
    },
    start: async () => {
      if (listening) return;
      server = await listen(port);
      listening = true;
    },
  };
}

function forward(target: URL, method: string, path: string, headers: IncomingMessage['headers'], body?: IncomingMessage): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: target.hostname, port: target.port, method, path, headers }, resolve);
    outgoing.once('error', reject);
    if (body) body.pipe(outgoing);
    else outgoing.end();
  });
}

function pickHeaders(response: IncomingMessage, names: string[]): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of names) {
    const value = response.headers[name];
    if (typeof value === 'string') picked[name] = value;
  }
  return picked;
}

function flipFirstByte(): Transform {
  let flipped = false;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      if (!flipped && chunk.length > 0) {
        flipped = true;
        const copy = Buffer.from(chunk);
        copy[0] = (copy[0] ?? 0) ^ 0xff;
        callback(null, copy);
        return;
      }
      callback(null, chunk);
    },
  });
}

function throttled(bytesPerSecond: number): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      setTimeout(() => callback(null, chunk), (chunk.length / bytesPerSecond) * 1000);
    },
  });
}
