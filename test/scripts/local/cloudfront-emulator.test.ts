import { once } from 'node:events';
import { createServer, request as httpRequest, type Agent, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApiGatewayEmulator } from '../../../scripts/local/api-gateway-emulator.js';
import { serveCloudFront } from '../../../scripts/local/deployed-shape/cloudfront-emulator.js';
import { distributionOriginAgent } from '../../../scripts/local/origin-keep-alive.js';

/**
 * The local CloudFront emulator sends a request only where the function sent it: in the
 * distribution each origin has a behavior of its own, so a behavior's default must never decide
 * (lib/constructs/front-door.ts), and a function that forgets to choose must fail here.
 */
const CODE = `import cf from 'cloudfront';
function handler(event) {
  if (event.request.uri === '/chosen') cf.selectRequestOriginById('api');
  return event.request;
}`;

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('the local CloudFront emulator', () => {
  const origin = createServer((request, response) => response.end(`origin saw ${request.url}`));
  const distribution = createServer();
  let url: string;

  beforeAll(async () => {
    const originUrl = await listen(origin);
    serveCloudFront(distribution, {
      functionCode: CODE,
      kvs: new Map(),
      origins: { api: { kind: 'custom', url: originUrl } },
      domainName: 'local',
    });
    url = await listen(distribution);
  });

  afterAll(() => {
    origin.close();
    distribution.close();
  });

  it('sends a request to the origin the function selected', async () => {
    const response = await fetch(`${url}/chosen`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('origin saw /chosen');
  });

  it('answers 502 when the function sent a request on without selecting an origin', async () => {
    const response = await fetch(`${url}/forgotten`);
    expect(response.status).toBe(502);
    expect(response.headers.get('x-cache')).toBe('Error from cloudfront');
  });
});

/**
 * The emulator's connections to its origins (scripts/local/origin-keep-alive.ts): the flaky 502
 * on a first request after an idle moment was the distribution sending a request on a pooled
 * connection the origin was closing.
 */
const ALWAYS_API = `import cf from 'cloudfront';
function handler(event) {
  cf.selectRequestOriginById('api');
  return event.request;
}`;

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

interface Served {
  method: string;
  url: string;
  bodyBytes: number;
  connection: number;
}

/**
 * An origin that closes a kept-alive connection when the next request arrives on it, before it
 * answers: what a Node server does when its keepAliveTimeout fires with that request still
 * unread. `afterBodyBytes` waits for that much of the request's body first.
 */
function closingOrigin(options: { afterBodyBytes?: number } = {}) {
  const served: Served[] = [];
  const requestsOn = new WeakMap<Socket, number>();
  const sockets: Socket[] = [];
  const server = createServer((request, response) => {
    const socket = request.socket;
    const earlier = requestsOn.get(socket) ?? 0;
    requestsOn.set(socket, earlier + 1);
    const connection = sockets.includes(socket) ? sockets.indexOf(socket) + 1 : sockets.push(socket);
    if (earlier > 0) {
      if (!options.afterBodyBytes) return socket.destroy();
      let seen = 0;
      request.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen >= options.afterBodyBytes!) socket.destroy();
      });
      return;
    }
    let bodyBytes = 0;
    request.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
    request.on('end', () => {
      served.push({ method: request.method!, url: request.url!, bodyBytes, connection });
      response.end('ok');
    });
  });
  return { server, served };
}

describe('the local CloudFront emulator and its origin connections', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map(close));
  });

  async function distributionOf(origin: Server, originKeepaliveTimeoutMs?: number): Promise<string> {
    servers.push(origin);
    const originUrl = await listen(origin);
    const distribution = createServer();
    servers.push(distribution);
    serveCloudFront(distribution, {
      functionCode: ALWAYS_API,
      kvs: new Map(),
      origins: { api: { kind: 'custom', url: originUrl } },
      domainName: 'local',
      originKeepaliveTimeoutMs,
    });
    return listen(distribution);
  }

  it('sends a request again on a new connection when the origin closed the kept-alive one before answering', async () => {
    const origin = closingOrigin();
    const url = await distributionOf(origin.server);
    expect((await fetch(`${url}/v2/`)).status).toBe(200);

    const again = await fetch(`${url}/v2/app/blobs/uploads/`, { method: 'POST' });
    expect(again.status).toBe(200);
    const empty = await fetch(`${url}/v2/app/blobs/uploads/abc?digest=sha256%3Aaa`, { method: 'PUT', body: '' });
    expect(empty.status).toBe(200);
    expect(origin.served.map(({ method, url, connection }) => ({ method, url, connection }))).toEqual([
      { method: 'GET', url: '/v2/', connection: 1 },
      { method: 'POST', url: '/v2/app/blobs/uploads/', connection: 2 },
      { method: 'PUT', url: '/v2/app/blobs/uploads/abc?digest=sha256%3Aaa', connection: 3 },
    ]);
  });

  it('answers 502, and does not send it again, when part of the body had gone to the closed connection', async () => {
    const origin = closingOrigin({ afterBodyBytes: 1 });
    const url = await distributionOf(origin.server);
    expect((await fetch(`${url}/v2/`)).status).toBe(200);

    const response = await fetch(`${url}/v2/app/blobs/uploads/abc`, { method: 'PATCH', body: Buffer.alloc(256 * 1024, 1) });
    expect(response.status).toBe(502);
    expect(response.headers.get('x-cache')).toBe('Error from cloudfront');
    // Sent again, the origin would have seen a PATCH with none or part of its body.
    expect(origin.served.map(({ method }) => method)).toEqual(['GET']);
  });

  it('gives up an idle origin connection after its keep-alive timeout, before the origin does', async () => {
    const connections: Socket[] = [];
    const origin = createServer((_, response) => response.end('ok'));
    origin.keepAliveTimeout = 60_000;
    origin.on('connection', (socket: Socket) => connections.push(socket));
    const url = await distributionOf(origin, 200);
    expect((await fetch(`${url}/v2/`)).status).toBe(200);
    expect((await fetch(`${url}/v2/`)).status).toBe(200);
    expect(connections).toHaveLength(1);

    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await fetch(`${url}/v2/`)).status).toBe(200);
    expect(connections).toHaveLength(2);
    // The distribution, not the origin, closed the idle one.
    expect(connections[0]!.destroyed).toBe(true);
  });
});

/**
 * The race itself, with the shape's own API origin (the API Gateway emulator's server) and the
 * distribution's pool: a connection idle for 3.9 s, then 3 s in which the process gets no CPU
 * (a busy two-core machine), then a request. It goes out on the pooled connection before any
 * timer has run; with the origin closing at Node's default 5 s, the origin's timer ran next and
 * reset it (ECONNRESET: measured from a stall of about 2.1 s on).
 */
describe('an idle origin connection across a stall of the process', () => {
  let api: Server;
  let port: number;
  let agent: Agent;
  beforeAll(async () => {
    api = createApiGatewayEmulator(async () => ({ statusCode: 200, body: 'ok' }));
    port = Number(new URL(await listen(api)).port);
    agent = distributionOriginAgent();
  });
  afterAll(async () => {
    agent.destroy();
    await close(api);
  });

  function get(): Promise<{ status: number; reused: boolean }> {
    return new Promise((resolve, reject) => {
      const outgoing = httpRequest({ host: '127.0.0.1', port, path: '/v2/', agent }, (response: IncomingMessage) => {
        response.resume();
        response.on('end', () => resolve({ status: response.statusCode!, reused: outgoing.reusedSocket }));
      });
      outgoing.on('error', reject);
      outgoing.end();
    });
  }

  it('is still open at the origin when the distribution reuses it', async () => {
    expect(await get()).toEqual({ status: 200, reused: false });
    const after = await new Promise<{ status: number; reused: boolean }>((resolve, reject) =>
      setTimeout(() => {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3_000);
        get().then(resolve, reject);
      }, 3_900),
    );
    expect(after).toEqual({ status: 200, reused: true });
  }, 15_000);
});
