import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveCloudFront } from '../../../scripts/local/deployed-shape/cloudfront-emulator.js';

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
