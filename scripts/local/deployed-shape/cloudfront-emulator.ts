import { randomBytes } from 'node:crypto';
import {
  request as httpRequest,
  type Agent,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type RequestOptions,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { CloudFrontResultResponse, CloudFrontResponseEvent, CloudFrontHeaders } from 'aws-lambda';
import type { Logger } from '../../../registry/support/logger.js';
import { silentLogger } from '../../../registry/support/logger.js';
import { loadCloudFrontFunction, type CfRequest, type CfResponse, type CfValue, type ViewerRequestEvent } from './cloudfront-function-sandbox.js';
import { DISTRIBUTION_ORIGIN_KEEPALIVE_MS, distributionOriginAgent } from '../origin-keep-alive.js';
import { signS3OriginRequest, type OriginCredentials } from './origin-signing.js';

/**
 * A local CloudFront distribution in front of the deployed shape's origins:
 *
 * 1. every request runs the viewer-request CloudFront Function (the real code, in the
 *    cloudfront-js-2.0 sandbox of cloudfront-function-sandbox.ts, with the KeyValueStore);
 * 2. a response the function generates is the answer; a request goes to the origin the function
 *    selected. The function selects one for every request it sends on (lib/constructs/front-door.ts
 *    gives each origin a behavior of its own, so a behavior's default must never decide); a
 *    request it sent on without choosing fails here with 502. Custom origins get the request with their own
 *    Host header, the S3 origin gets it path-style on the bucket and signed with SigV4 as origin
 *    access control signs it (UNSIGNED-PAYLOAD, the viewer's Authorization replaced);
 * 3. on the upload behavior (`/v2/<name>/blobs/uploads/...`), the Lambda@Edge origin-response
 *    function sees the origin's status and headers and may replace the answer;
 * 4. bodies stream both ways: nothing is buffered, so a multi-GB PUT costs no memory here;
 * 5. origin connections are kept alive for the origin keep-alive timeout (CloudFront's default
 *    5 s; the local origins keep theirs longer, see origin-keep-alive.ts), and a request that
 *    meets a kept-alive connection closed by the origin before any answer, with none of its body
 *    sent yet, goes again on a new connection (sendToOrigin).
 *
 * CloudFront adds Via, X-Amz-Cf-Id and X-Forwarded-For toward the origin and answers with
 * Via and X-Cache; the emulator does the same, so clients see a CloudFront-shaped answer.
 */
export type CloudFrontOrigin =
  | { kind: 'custom'; url: string }
  | { kind: 's3'; endpoint: string; bucket: string; region: string; credentials: OriginCredentials };

export type OriginResponseHandler = (event: CloudFrontResponseEvent) => Promise<CloudFrontResultResponse>;

export interface CloudFrontEmulatorOptions {
  /** The function code, as frontDoorFunctionCode(settings) returns it. */
  functionCode: string;
  kvs: ReadonlyMap<string, string>;
  origins: Readonly<Record<string, CloudFrontOrigin>>;
  /** The Lambda@Edge origin-response function of the upload behavior. */
  originResponse?: OriginResponseHandler;
  /** The distribution's host name, e.g. 127.0.0.1:5000 (the event's distributionDomainName). */
  domainName: string;
  logger?: Logger;
  /** How long an idle origin connection is kept (the origin keep-alive timeout; default CloudFront's 5 s). */
  originKeepaliveTimeoutMs?: number;
}

const UPLOAD_BEHAVIOR = /^\/v2\/.+\/blobs\/uploads(\/|$)/;
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'transfer-encoding']);
/** Headers CloudFront does not let a function see or set as viewer headers (it manages them). */
const VIA = '1.1 local.cloudfront.net (CloudFront)';

/** Binds the distribution's request handling to `server` (created and bound by the caller). */
export function serveCloudFront(server: Server, options: CloudFrontEmulatorOptions): void {
  const logger = options.logger ?? silentLogger;
  const code = loadCloudFrontFunction(options.functionCode, { originIds: Object.keys(options.origins), kvs: options.kvs });
  const keepaliveTimeoutMs = options.originKeepaliveTimeoutMs ?? DISTRIBUTION_ORIGIN_KEEPALIVE_MS;
  const agent = distributionOriginAgent(keepaliveTimeoutMs);
  server.on('close', () => agent.destroy());
  server.requestTimeout = 0;
  server.on('request', (viewer: IncomingMessage, answer: ServerResponse) => {
    handle(viewer, answer).catch((error: unknown) => {
      const code = (error as NodeJS.ErrnoException).code;
      logger.error('cloudfront emulator failed', { method: viewer.method, path: viewer.url?.split('?')[0], code, error: String(error) });
      if (!answer.headersSent) answer.writeHead(502, { 'content-type': 'text/plain', via: VIA, 'x-cache': 'Error from cloudfront' });
      answer.end('502 ERROR: the request could not be satisfied (local CloudFront emulator)\n');
      viewer.resume();
    });
  });

  async function handle(viewer: IncomingMessage, answer: ServerResponse): Promise<void> {
    const requestId = randomBytes(24).toString('base64url');
    const request = toCfRequest(viewer);
    const event: ViewerRequestEvent = {
      version: '1.0',
      context: { distributionDomainName: options.domainName, distributionId: 'ELOCALDISTRIBUTION', eventType: 'viewer-request', requestId },
      viewer: { ip: viewer.socket.remoteAddress ?? '127.0.0.1' },
      request,
    };
    const outcome = await code.run(event);
    if ('response' in outcome.result) {
      viewer.resume();
      return writeGenerated(answer, outcome.result.response);
    }
    const originId = outcome.originId;
    if (originId === undefined) throw new Error(`the front door function selected no origin for ${request.method} ${request.uri}`);
    const origin = options.origins[originId];
    if (!origin) throw new Error(`no origin ${originId}`);
    const forwarded = outcome.result.request;
    const upstream = await sendToOrigin(viewer, forwarded, origin, requestId, agent);
    const edge = options.originResponse && UPLOAD_BEHAVIOR.test(request.uri) ? options.originResponse : undefined;
    const replaced = edge
      ? await edge(originResponseEvent(forwarded, origin, upstream, { domainName: options.domainName, requestId, viewer, keepaliveTimeoutMs }))
      : undefined;
    if (
      replaced &&
      (replaced.status !== String(upstream.statusCode) || replaced.body !== undefined || !sameHeaders(replaced.headers, upstream.headers))
    ) {
      upstream.resume();
      return writeEdgeResult(answer, replaced);
    }
    const headers = withoutHopByHop(upstream.headers);
    answer.writeHead(upstream.statusCode ?? 502, { ...headers, via: VIA, 'x-cache': 'Miss from cloudfront', 'x-amz-cf-id': requestId });
    upstream.pipe(answer);
  }
}

function toCfRequest(viewer: IncomingMessage): CfRequest {
  const target = viewer.url ?? '/';
  const question = target.indexOf('?');
  const uri = question < 0 ? target : target.slice(0, question);
  // Values as the viewer sent them: CloudFront does not decode the query string for the function.
  const querystring: Record<string, CfValue> = {};
  if (question >= 0) {
    for (const pair of target.slice(question + 1).split('&')) {
      if (!pair) continue;
      const equals = pair.indexOf('=');
      const name = equals < 0 ? pair : pair.slice(0, equals);
      const value = equals < 0 ? '' : pair.slice(equals + 1);
      addValue(querystring, name, value);
    }
  }
  const headers: Record<string, CfValue> = {};
  const cookies: Record<string, CfValue> = {};
  for (let i = 0; i < viewer.rawHeaders.length; i += 2) {
    const name = viewer.rawHeaders[i]!.toLowerCase();
    const value = viewer.rawHeaders[i + 1]!;
    if (name === 'cookie') {
      for (const cookie of value.split(/;\s*/).filter(Boolean)) {
        const equals = cookie.indexOf('=');
        addValue(cookies, equals < 0 ? cookie : cookie.slice(0, equals), equals < 0 ? '' : cookie.slice(equals + 1));
      }
    } else if (!HOP_BY_HOP.has(name) || name === 'transfer-encoding') {
      addValue(headers, name, value);
    }
  }
  return { method: viewer.method ?? 'GET', uri, querystring, headers, cookies };
}

function addValue(into: Record<string, CfValue>, name: string, value: string): void {
  const existing = into[name];
  if (!existing) into[name] = { value };
  else existing.multiValue = [...(existing.multiValue ?? [{ value: existing.value }]), { value }];
}

function valuesOf(entry: CfValue): string[] {
  return entry.multiValue ? entry.multiValue.map((item) => item.value) : [entry.value];
}

function queryOf(request: CfRequest): string {
  const pairs = Object.entries(request.querystring).flatMap(([name, entry]) =>
    valuesOf(entry).map((value) => (value === '' ? name : `${name}=${value}`)),
  );
  return pairs.length > 0 ? `?${pairs.join('&')}` : '';
}

async function sendToOrigin(
  viewer: IncomingMessage,
  request: CfRequest,
  origin: CloudFrontOrigin,
  requestId: string,
  agent: Agent,
): Promise<IncomingMessage> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, entry] of Object.entries(request.headers)) {
    if (name === 'host' || HOP_BY_HOP.has(name)) continue;
    headers[name] = valuesOf(entry).length > 1 ? valuesOf(entry) : entry.value;
  }
  const cookies = Object.entries(request.cookies ?? {}).flatMap(([name, entry]) => valuesOf(entry).map((value) => `${name}=${value}`));
  if (cookies.length > 0) headers.cookie = cookies.join('; ');
  const chunked = viewer.headers['transfer-encoding'] !== undefined;
  if (chunked) headers['transfer-encoding'] = 'chunked';
  headers.via = VIA;
  headers['x-amz-cf-id'] = requestId;
  headers['x-forwarded-for'] = viewer.socket.remoteAddress ?? '127.0.0.1';

  let url: URL;
  if (origin.kind === 's3') {
    url = new URL(`${origin.endpoint}/${origin.bucket}${request.uri}`);
    delete headers.authorization;
    Object.assign(
      headers,
      await signS3OriginRequest({ method: request.method, url, headers, region: origin.region, credentials: origin.credentials }),
    );
  } else {
    url = new URL(`${origin.url}${request.uri}${queryOf(request)}`);
  }
  return forward(viewer, url, { method: request.method, headers: { ...headers, host: url.host }, agent });
}

/**
 * The request on a pooled connection. When the origin closes a kept-alive connection just as the
 * request goes out on it (its idle timeout ran out first), the request fails before any answer:
 * it goes again, once, on a new connection, as HTTP clients retry on a closed persistent
 * connection (RFC 9112 section 9.3.1; CloudFront, too, makes more than one attempt at an origin:
 * ConnectionAttempts, default 3, for connections that fail). Only while none
 * of the viewer's body has been taken for the failed attempt: a streamed body cannot be sent
 * twice, so one whose bytes went to the closed connection is a 502, as before.
 */
function forward(viewer: IncomingMessage, url: URL, options: RequestOptions, again = false): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    let bodyBytes = 0;
    let answered = false;
    const counted = (chunk: Buffer) => {
      bodyBytes += chunk.length;
    };
    const outgoing = httpRequest(url, options, (response) => {
      answered = true;
      viewer.off('data', counted);
      resolve(response);
    });
    const aborted = () => outgoing.destroy();
    outgoing.on('error', (error) => {
      viewer.off('data', counted);
      viewer.off('aborted', aborted);
      viewer.unpipe(outgoing);
      if (answered || again || !outgoing.reusedSocket || bodyBytes > 0 || viewer.socket.destroyed) return reject(error);
      // A new connection: `agent: false` opens one of its own, closed after the answer.
      resolve(forward(viewer, url, { ...options, agent: false }, true));
    });
    viewer.on('aborted', aborted);
    if (viewer.readableEnded) {
      outgoing.end();
    } else {
      viewer.pipe(outgoing);
      viewer.on('data', counted);
    }
  });
}

function withoutHopByHop(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const kept: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) kept[name] = value;
  return kept;
}

function writeGenerated(answer: ServerResponse, response: CfResponse): void {
  const body =
    typeof response.body === 'string'
      ? Buffer.from(response.body)
      : response.body
        ? Buffer.from(response.body.data, response.body.encoding === 'base64' ? 'base64' : 'utf8')
        : Buffer.alloc(0);
  const headers: Record<string, string | string[]> = {};
  for (const [name, entry] of Object.entries(response.headers ?? {})) headers[name] = valuesOf(entry);
  answer.writeHead(response.statusCode, response.statusDescription ?? '', {
    ...headers,
    'content-length': String(body.length),
    via: VIA,
    'x-cache': 'FunctionGeneratedResponse from cloudfront',
  });
  answer.end(body);
}

function toEdgeHeaders(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): CloudFrontHeaders {
  const result: CloudFrontHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    result[name.toLowerCase()] = (Array.isArray(value) ? value : [value]).map((item) => ({ key: name, value: String(item) }));
  }
  return result;
}

function sameHeaders(edge: CloudFrontHeaders | undefined, origin: IncomingHttpHeaders): boolean {
  if (!edge) return true;
  return JSON.stringify(toEdgeHeaders(origin)) === JSON.stringify(edge);
}

function originResponseEvent(
  request: CfRequest,
  origin: CloudFrontOrigin,
  upstream: IncomingMessage,
  context: { domainName: string; requestId: string; viewer: IncomingMessage; keepaliveTimeoutMs: number },
): CloudFrontResponseEvent {
  const { domainName, requestId, viewer } = context;
  const headers = Object.fromEntries(Object.entries(request.headers).map(([name, entry]) => [name, valuesOf(entry)])) as Record<string, string[]>;
  const originField =
    origin.kind === 's3'
      ? { s3: { authMethod: 'none' as const, customHeaders: {}, domainName: new URL(origin.endpoint).host, path: '', region: origin.region } }
      : {
          custom: {
            customHeaders: {},
            domainName: new URL(origin.url).hostname,
            keepaliveTimeout: context.keepaliveTimeoutMs / 1000,
            path: '',
            port: Number(new URL(origin.url).port || 80),
            protocol: 'http' as const,
            readTimeout: 30,
            sslProtocols: ['TLSv1.2'],
          },
        };
  return {
    Records: [
      {
        cf: {
          config: { distributionDomainName: domainName, distributionId: 'ELOCALDISTRIBUTION', eventType: 'origin-response', requestId },
          request: {
            clientIp: viewer.socket.remoteAddress ?? '127.0.0.1',
            method: request.method,
            uri: request.uri,
            querystring: queryOf(request).slice(1),
            headers: toEdgeHeaders(headers),
            origin: originField,
          },
          response: {
            status: String(upstream.statusCode ?? 502),
            statusDescription: upstream.statusMessage ?? '',
            headers: toEdgeHeaders(upstream.headers),
          },
        },
      },
    ],
  } as CloudFrontResponseEvent;
}

function writeEdgeResult(answer: ServerResponse, result: CloudFrontResultResponse): void {
  const body = result.body === undefined ? Buffer.alloc(0) : Buffer.from(result.body, result.bodyEncoding === 'base64' ? 'base64' : 'utf8');
  const headers: Record<string, string | string[]> = {};
  for (const [name, entries] of Object.entries(result.headers ?? {})) {
    if (name === 'content-length' || HOP_BY_HOP.has(name)) continue;
    headers[entries[0]?.key ?? name] = entries.map((entry) => entry.value);
  }
  answer.writeHead(Number(result.status), result.statusDescription ?? '', {
    ...headers,
    'content-length': String(body.length),
    via: VIA,
    'x-cache': 'Miss from cloudfront',
  });
  answer.end(body);
}
