import { describe, expect, it } from 'vitest';
import { frontDoorFunctionCode } from '../../../functions/edge/front-door-code.js';
import {
  FunctionCodeRefused,
  loadCloudFrontFunction,
  type ViewerRequestEvent,
} from '../../../scripts/local/deployed-shape/cloudfront-function-sandbox.js';

/** The local CloudFront emulator runs the front door code only as cloudfront-js-2.0 would. */
const OPTIONS = { originIds: ['api', 'uploads'], kvs: new Map([['origin-secret', 'o'.repeat(40)]]) };

function event(uri = '/v2/'): ViewerRequestEvent {
  return {
    version: '1.0',
    context: { distributionDomainName: 'd111111abcdef8.cloudfront.net', distributionId: 'E1', eventType: 'viewer-request', requestId: 'r' },
    viewer: { ip: '198.51.100.7' },
    request: { method: 'GET', uri, querystring: {}, headers: {}, cookies: {} },
  };
}

const returning = (expression: string) =>
  `function handler(event) { event.request.headers.probe = { value: String(${expression}) }; return event.request; }`;

async function probe(expression: string): Promise<string> {
  const { result } = await loadCloudFrontFunction(returning(expression), OPTIONS).run(event());
  if (!('request' in result)) throw new Error('expected a request');
  return result.request.headers.probe!.value;
}

describe('the cloudfront-js-2.0 sandbox of the local CloudFront emulator', () => {
  it('refuses code over 10 KB, as CloudFront refuses to publish it', () => {
    const padded = `${returning('1')}\n${'// padding\n'.repeat(1000)}`;
    expect(() => loadCloudFrontFunction(padded, OPTIONS)).toThrow(FunctionCodeRefused);
    expect(() => loadCloudFrontFunction(padded, OPTIONS)).toThrow(/10240/);
  });

  it('refuses code that requires or imports any module but cloudfront and crypto', () => {
    expect(() => loadCloudFrontFunction(`const fs = require('fs');\n${returning('1')}`, OPTIONS)).toThrow(/module "fs"/);
    expect(() => loadCloudFrontFunction(`import http from 'node:http';\n${returning('1')}`, OPTIONS)).toThrow(/module "node:http"/);
    expect(() =>
      loadCloudFrontFunction(`import cf from 'cloudfront';\nimport crypto from 'crypto';\n${returning('typeof cf.kvs')}`, OPTIONS),
    ).not.toThrow();
  });

  it('offers no timers, network, process or code generation from strings', async () => {
    expect(await probe('typeof setTimeout')).toBe('undefined');
    expect(await probe('typeof setInterval')).toBe('undefined');
    expect(await probe('typeof fetch')).toBe('undefined');
    expect(await probe('typeof process')).toBe('undefined');
    expect(await probe('(() => { try { return eval("1"); } catch (error) { return "refused"; } })()')).toBe('refused');
    expect(await probe('typeof Buffer')).toBe('function');
  });

  it('offers crypto hashes and HMAC only, digest() without an encoding being a Buffer', async () => {
    expect(await probe("require('crypto').createHmac('sha256', 'k').update('x').digest('hex').length")).toBe('64');
    expect(await probe("Buffer.isBuffer(require('crypto').createHash('sha256').update('x').digest())")).toBe('true');
    expect(await probe("typeof require('crypto').randomBytes")).toBe('undefined');
  });

  it('fails an invocation that selects an origin the distribution does not have', async () => {
    const code = "import cf from 'cloudfront';\nfunction handler(event) { cf.selectRequestOriginById('elsewhere'); return event.request; }";
    await expect(loadCloudFrontFunction(code, OPTIONS).run(event())).rejects.toThrow(/no origin "elsewhere"/);
  });

  it('runs the front door function that ships, within the limits', async () => {
    const code = frontDoorFunctionCode({ primaryRegion: 'us-east-1' });
    const { result, originId } = await loadCloudFrontFunction(code, OPTIONS).run(event('/v2/team/app/manifests/latest'));
    // It always chooses the origin itself: in the distribution, a behavior's default never decides.
    expect(originId).toBe('api');
    expect('request' in result && result.request.headers['x-registry-origin-secret']?.value).toBe('o'.repeat(40));
  });
});
