import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { lambdaToRegistryRequest, registryToLambdaResponse } from '../../registry/transport/lambda-adapter.js';
import type { RegistryHandler } from '../../registry/model/http.js';
import { silentLogger, type Logger } from '../../registry/support/logger.js';
import { splitTarget } from '../../registry/transport/node-server.js';
import { keepOriginConnectionsOpen } from './origin-keep-alive.js';

/**
 * A local stand-in for API Gateway (HTTP API, Lambda proxy integration, payload format 2.0) in
 * front of the registry function, with the limits that make an ordinary `docker push` fail in
 * AWS. Each request is buffered whole, as API Gateway does, then:
 *
 * - a body over 10 MB (API Gateway's request payload quota) is refused with API Gateway's own
 *   `413 {"message":"Request Entity Too Large"}`, and the function is not invoked (the body is
 *   read to its end and dropped first, so that the client reliably sees the 413);
 * - the request becomes the payload-2.0 event, binary bodies base64-encoded. When that JSON is
 *   over Lambda's synchronous invoke limit (6,291,456 bytes; about 4.49 MiB of raw body less the
 *   event's envelope, "about 4.4 MiB"), Lambda refuses the Invoke call with 413
 *   RequestEntityTooLargeException, and API Gateway answers the client what it answers for any
 *   failed integration of an HTTP API: `500 {"message":"Internal Server Error"}`. The Lambda 413
 *   shows only in API Gateway's `$context.integrationErrorMessage`, not to the client.
 * - the function gets 30 s (the HTTP API integration timeout, a hard limit); after that the
 *   client gets `503 {"message":"Service Unavailable"}` (an HTTP API's answer; REST APIs answer
 *   504), while the function runs on, as it would in Lambda.
 * - a function result over 6,291,556 bytes (Lambda's response limit) is a failed integration:
 *   500 again.
 *
 * The event is really serialized and parsed again, so the function sees exactly what it would
 * see in Lambda: a whole body in one buffer, lower-case header names, cookies apart.
 */

export interface ApiGatewayLimits {
  /** API Gateway's request payload limit (10 MB). */
  maxRequestBytes: number;
  /** Lambda's synchronous Invoke request payload limit, on the JSON event. */
  maxInvokeRequestBytes: number;
  /** Lambda's synchronous Invoke response payload limit, on the JSON result. */
  maxInvokeResponseBytes: number;
  /** The HTTP API integration timeout. */
  integrationTimeoutMs: number;
}

export const API_GATEWAY_LIMITS: ApiGatewayLimits = {
  maxRequestBytes: 10 * 1024 * 1024,
  maxInvokeRequestBytes: 6_291_456,
  maxInvokeResponseBytes: 6_291_556,
  integrationTimeoutMs: 30_000,
};

export type LambdaInvoke = (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2>;

/** Why the emulator answered instead of the function. */
export type RefusalReason = 'request-too-large' | 'invoke-request-too-large' | 'invoke-response-too-large' | 'integration-timeout' | 'function-error';

export interface Refusal {
  reason: RefusalReason;
  status: number;
  method: string;
  path: string;
  /** The size that was over the limit (request body, event or result JSON), when that is the reason. */
  bytes?: number;
}

export interface ApiGatewayEmulatorOptions {
  limits?: Partial<ApiGatewayLimits>;
  logger?: Logger;
  /** Told about every request the emulator refused or failed itself (for tests and logs). */
  onRefusal?: (refusal: Refusal) => void;
}

const ANSWERS = {
  'request-too-large': { status: 413, message: 'Request Entity Too Large' },
  'invoke-request-too-large': { status: 500, message: 'Internal Server Error' },
  'invoke-response-too-large': { status: 500, message: 'Internal Server Error' },
  'integration-timeout': { status: 503, message: 'Service Unavailable' },
  'function-error': { status: 500, message: 'Internal Server Error' },
} as const satisfies Record<RefusalReason, { status: number; message: string }>;

/** What functions/registry-api.ts does with an event, without middy: the registry as a Lambda handler. */
export function lambdaInvokeOf(registry: RegistryHandler): LambdaInvoke {
  return async (event) => registryToLambdaResponse(await registry(lambdaToRegistryRequest(event)), event.requestContext.http.method);
}

export function createApiGatewayEmulator(invoke: LambdaInvoke, options: ApiGatewayEmulatorOptions = {}): Server {
  const limits = { ...API_GATEWAY_LIMITS, ...options.limits };
  const logger = options.logger ?? silentLogger;
  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      logger.error('api gateway emulator failed', { method: request.method, error: String(error) });
      if (!response.headersSent) response.writeHead(500);
      response.end();
    });
  });
  server.requestTimeout = 0;
  // The deployed shape's API origin: idle connections outlive the distribution's (origin-keep-alive.ts).
  keepOriginConnectionsOpen(server);

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const requestId = randomBytes(12).toString('base64url');
    const method = request.method ?? 'GET';
    // Not `new URL`: it would resolve dot segments and turn `\` into `/`, which API Gateway does not.
    const target = { ...splitTarget(request.url ?? '/'), rawQuery: rawQueryOf(request.url ?? '/') };
    const refuse = (reason: RefusalReason, bytes?: number) => {
      const refusal: Refusal = { reason, status: ANSWERS[reason].status, method, path: target.path, bytes };
      logger.warn('api gateway emulator refused a request', { ...refusal });
      options.onRefusal?.(refusal);
      const body = JSON.stringify({ message: ANSWERS[reason].message });
      if (response.headersSent) return;
      response.writeHead(refusal.status, {
        'Content-Type': 'application/json',
        'Content-Length': String(Buffer.byteLength(body)),
        'apigw-requestid': requestId,
      });
      response.end(body);
    };

    const body = await readBody(request, limits.maxRequestBytes);
    if (body === 'aborted') return;
    if ('tooLarge' in body) return refuse('request-too-large', body.tooLarge);

    const event = toEvent(request, target, body, requestId);
    const payload = JSON.stringify(event);
    const payloadBytes = Buffer.byteLength(payload);
    if (payloadBytes > limits.maxInvokeRequestBytes) return refuse('invoke-request-too-large', payloadBytes);

    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), limits.integrationTimeoutMs)));
    let outcome: APIGatewayProxyStructuredResultV2 | 'timeout' | 'error';
    try {
      const invocation = invoke(JSON.parse(payload) as APIGatewayProxyEventV2).catch((error: unknown) => {
        logger.error('function failed', { method, path: target.path, error: String(error) });
        return 'error' as const;
      });
      outcome = await Promise.race([invocation, timedOut]);
    } finally {
      clearTimeout(timer);
    }
    if (outcome === 'timeout') return refuse('integration-timeout');
    if (outcome === 'error') return refuse('function-error');
    const resultBytes = Buffer.byteLength(JSON.stringify(outcome));
    if (resultBytes > limits.maxInvokeResponseBytes) return refuse('invoke-response-too-large', resultBytes);
    writeResult(response, method, outcome, requestId);
  }

  return server;
}

export interface RunningEmulator {
  url: string;
  port: number;
  server: Server;
  stop(): Promise<void>;
}

export async function startApiGatewayEmulator(
  invoke: LambdaInvoke,
  options: ApiGatewayEmulatorOptions & { host?: string; port?: number } = {},
): Promise<RunningEmulator> {
  const host = options.host ?? '127.0.0.1';
  const server = createApiGatewayEmulator(invoke, options);
  server.listen(options.port ?? 0, host);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${port}`,
    port,
    server,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A body past the limit is read to its end and dropped, then refused: a client still sending
 * when the answer comes may see only a broken pipe (Go's HTTP client reports its write error
 * first), and the point of the emulator is to show API Gateway's 413. Past DRAIN_LIMIT_BYTES
 * the answer goes out anyway.
 */
const DRAIN_LIMIT_BYTES = 4 * 1024 * 1024 * 1024;

/** The whole body, or its size once it passed the limit (nothing past the limit is kept). */
function readBody(request: IncomingMessage, limit: number): Promise<Buffer | { tooLarge: number } | 'aborted'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else if (chunks.length > 0) chunks.length = 0;
      if (size > DRAIN_LIMIT_BYTES) resolve({ tooLarge: size });
    });
    request.on('end', () => resolve(size > limit ? { tooLarge: size } : Buffer.concat(chunks, size)));
    request.on('error', () => resolve('aborted'));
    request.on('aborted', () => resolve('aborted'));
  });
}

/** Content types API Gateway hands over as text; every other body is base64-encoded. */
function isText(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return type.startsWith('text/') || ['application/json', 'application/xml', 'application/x-www-form-urlencoded'].includes(type);
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'expect', 'proxy-connection', 'te', 'trailer']);

/** The query string as sent, without `?` and fragment. */
function rawQueryOf(target: string): string {
  const question = target.indexOf('?');
  return question < 0 ? '' : target.slice(question + 1).split('#')[0]!;
}

interface Target {
  /** As an HTTP API hands it over in `rawPath`: percent-decoded, nothing else changed. */
  path: string;
  query: URLSearchParams;
  rawQuery: string;
}

function toEvent(request: IncomingMessage, url: Target, body: Buffer, requestId: string): APIGatewayProxyEventV2 {
  const headers: Record<string, string> = {};
  let cookies: string[] | undefined;
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    if (name === 'cookie') {
      cookies = (Array.isArray(value) ? value.join('; ') : value).split(/;\s*/).filter(Boolean);
      continue;
    }
    headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  if (body.length > 0) headers['content-length'] = String(body.length);
  const sourceIp = request.socket.remoteAddress ?? '127.0.0.1';
  headers['x-forwarded-for'] = sourceIp;
  headers['x-forwarded-port'] = String(request.socket.localPort ?? 80);
  headers['x-forwarded-proto'] = 'http';
  headers['x-amzn-trace-id'] = `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomBytes(12).toString('hex')}`;

  const queryStringParameters: Record<string, string> = {};
  for (const key of new Set(url.query.keys())) queryStringParameters[key] = url.query.getAll(key).join(',');
  const host = headers.host ?? 'localhost';
  const now = new Date();
  const text = isText(headers['content-type']);
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: url.path,
    rawQueryString: url.rawQuery,
    cookies,
    headers,
    queryStringParameters: Object.keys(queryStringParameters).length > 0 ? queryStringParameters : undefined,
    requestContext: {
      accountId: '123456789012',
      apiId: 'local',
      domainName: host,
      domainPrefix: host.split('.')[0]!,
      http: {
        method: request.method ?? 'GET',
        path: url.path,
        protocol: `HTTP/${request.httpVersion}`,
        sourceIp,
        userAgent: headers['user-agent'] ?? '',
      },
      requestId,
      routeKey: '$default',
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    body: body.length > 0 ? body.toString(text ? 'utf8' : 'base64') : undefined,
    isBase64Encoded: body.length > 0 && !text,
  };
}

function writeResult(response: ServerResponse, method: string, result: APIGatewayProxyStructuredResultV2, requestId: string): void {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(result.headers ?? {})) {
    if (!HOP_BY_HOP.has(name.toLowerCase())) headers[name] = String(value);
  }
  if (result.cookies?.length) headers['Set-Cookie'] = result.cookies;
  headers['apigw-requestid'] = requestId;
  const body = result.body === undefined ? Buffer.alloc(0) : Buffer.from(result.body, result.isBase64Encoded ? 'base64' : 'utf8');
  if (method !== 'HEAD') {
    for (const name of Object.keys(headers)) if (name.toLowerCase() === 'content-length') delete headers[name];
    headers['Content-Length'] = String(body.length);
  }
  response.writeHead(result.statusCode ?? 200, headers);
  response.end(method === 'HEAD' ? undefined : body);
}
