import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { RegistryHandler } from '../model/http.js';
import type { Logger } from '../support/logger.js';
import { ClientAbort } from '../model/client-abort.js';

export interface NodeServerOptions {
  /**
   * Drops a request whose body sends nothing for this long (default 60 s). An idle timeout, not
   * a total one: a multi-GB layer may take as long as it needs while its bytes keep coming.
   */
  bodyIdleTimeoutMs?: number;
  /** How long a request's headers may take to arrive (default 60 s). */
  headersTimeoutMs?: number;
  /** Decode the path's percent-escapes as API Gateway does (default); false keeps them, as an ALB does. */
  decodePath?: boolean;
}

export const DEFAULT_BODY_IDLE_TIMEOUT_MS = 60_000;
const DEFAULT_HEADERS_TIMEOUT_MS = 60_000;

/**
 * The local shell around the registry: a Node HTTP server that hands the request stream to
 * the registry as it arrives, so a 1 GiB PATCH flows into S3 without being buffered.
 */
export function createNodeServer(registry: RegistryHandler, logger: Logger, options: NodeServerOptions = {}): Server {
  const idleMs = options.bodyIdleTimeoutMs ?? DEFAULT_BODY_IDLE_TIMEOUT_MS;
  const server = createServer((request, response) => {
    serve(registry, request, response, idleMs, options.decodePath ?? true).catch((error: unknown) => {
      logger.error('response failed', { method: request.method, path: rawPathOf(request.url), error: String(error) });
      if (!response.headersSent) response.writeHead(500);
      response.end();
    });
  });
  // Multi-GB layers arrive as one request: no total request timeout; the body's idle timeout
  // (above) and the header timeout drop the requests that stop sending.
  server.requestTimeout = 0;
  server.headersTimeout = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  server.keepAliveTimeout = 65_000;
  return server;
}

async function serve(
  registry: RegistryHandler,
  request: IncomingMessage,
  response: ServerResponse,
  idleMs: number,
  decodePath: boolean,
): Promise<void> {
  const { path, query } = splitTarget(request.url ?? '/', decodePath);
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  const result = await registry({
    requestId: randomUUID(),
    method: request.method ?? 'GET',
    path,
    query,
    headers,
    body: guardedBody(request, idleMs),
    sourceIp: request.socket.remoteAddress,
  });
  if (response.destroyed) return;
  response.writeHead(result.status, result.headers);
  if (request.method === 'HEAD' || result.body === undefined) response.end();
  else response.end(result.body);
  // An error answered before the body was read: drain it so the client sees the answer, not a
  // reset; but a body that stops arriving while drained is dropped like any other.
  if (!request.complete) drain(request, idleMs);
}

/**
 * The request target as Lambda's `rawPath` and `rawQueryString` carry it behind an HTTP API:
 * the path as sent, with no dot segment resolved and no `\` turned into `/` (what `new URL`
 * would do), its percent-escapes decoded as API Gateway decodes them (`decode: false` keeps
 * them, as an ALB does), so that a local server routes exactly what the deployed one routes.
 */
export function splitTarget(target: string, decode = true): { path: string; query: URLSearchParams } {
  // Absolute form (`GET http://host/path`), as a proxy would send it: the path is what counts.
  const origin = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(target);
  const rest = origin ? target.slice(origin[0].length) : target;
  const question = rest.indexOf('?');
  const rawPath = (question < 0 ? rest : rest.slice(0, question)).split('#')[0] || '/';
  const query = new URLSearchParams(question < 0 ? '' : rest.slice(question + 1).split('#')[0]);
  return { path: decode ? percentDecoded(rawPath) : rawPath, query };
}

/** Decodes `%XX` runs as UTF-8; a malformed escape is left as it is rather than refused. */
function percentDecoded(path: string): string {
  return path.replace(/(?:%[0-9a-f]{2})+/gi, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return run;
    }
  });
}

function rawPathOf(url: string | undefined): string {
  return splitTarget(url ?? '/').path;
}

/**
 * The body as the registry reads it, in flowing mode one chunk at a time (so that draining it
 * later still works). A broken connection, or no bytes for `idleMs` while the registry waits
 * for them (time the registry spends writing parts does not count), ends it with a ClientAbort.
 */
async function* guardedBody(request: IncomingMessage, idleMs: number): AsyncGenerator<Uint8Array> {
  const queue: Uint8Array[] = [];
  let state = 'open' as 'open' | 'ended' | 'broken' | 'idle';
  let cause: unknown;
  let wake: (() => void) | undefined;
  const poke = () => wake?.();
  const onData = (chunk: Buffer) => {
    queue.push(chunk);
    request.pause();
    poke();
  };
  const onEnd = () => {
    state = 'ended';
    poke();
  };
  const onBroken = (error?: unknown) => {
    if (state === 'open' && !request.complete) {
      state = 'broken';
      cause = error;
    }
    poke();
  };
  request.on('data', onData);
  request.on('end', onEnd);
  request.on('error', onBroken);
  request.on('close', onBroken);
  // The connection may have broken before the registry came to read the body.
  if (!request.complete && request.destroyed) state = 'broken';
  try {
    for (;;) {
      const chunk = queue.shift();
      if (chunk) {
        yield chunk;
        continue;
      }
      if (state === 'ended') return;
      if (state === 'broken') throw new ClientAbort('disconnected', { cause });
      if (state === 'idle') throw new ClientAbort('idle');
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(() => {
          if (state === 'open') state = 'idle';
          resolve();
        }, idleMs);
        request.resume();
      });
      clearTimeout(timer);
      wake = undefined;
    }
  } finally {
    request.off('data', onData);
    request.off('end', onEnd);
    request.off('error', onBroken);
    request.off('close', onBroken);
  }
}

/** Reads the rest of a body nobody wants; closes the connection if it stalls for `idleMs`. */
function drain(request: IncomingMessage, idleMs: number): void {
  const timer = setTimeout(() => request.socket.destroy(), idleMs);
  const settle = () => clearTimeout(timer);
  request.on('data', () => timer.refresh());
  request.once('end', settle);
  request.once('close', settle);
  request.resume();
}
