import { createHmac } from 'node:crypto';
import { createContext, Script } from 'node:vm';

/**
 * Runs CloudFront Function code (cloudfront-js-2.0) in a node:vm context with only what the
 * runtime offers the front door: `cloudfront` (a KeyValueStore and origin selection) and
 * `crypto` (HMAC), no timers, no process, no network. The `import X from 'module'` lines the
 * runtime takes become calls of the sandbox's `require`. A small stand-in for the tests of the
 * function itself; scripts/local/ has the full CloudFront emulator.
 */
/** What the handler returned: the request (for an origin) or a response it generated. */
export interface FunctionResult {
  uri?: string;
  querystring?: Record<string, { value: string }>;
  headers: Record<string, { value: string }>;
  statusCode?: number;
  body?: { encoding: string; data: string };
}

export interface FunctionRun {
  result: FunctionResult;
  /** The origin id the function selected; undefined when it left the behavior's default. */
  origin?: string;
}

export interface CloudFrontFunctionEvent {
  method: string;
  uri: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  viewerIp?: string;
}

export function loadCloudFrontFunction(code: string, kvs: Record<string, string>): (event: CloudFrontFunctionEvent) => Promise<FunctionRun> {
  let selected: string | undefined;
  const cloudfront = {
    kvs: () => ({
      get: async (key: string) => {
        if (!(key in kvs)) throw new Error(`KeyValueStore has no key ${key}`);
        return kvs[key];
      },
    }),
    selectRequestOriginById: (id: string) => {
      selected = id;
    },
  };
  const crypto = { createHmac: (algorithm: string, key: string) => createHmac(algorithm, key) };
  const modules: Record<string, unknown> = { cloudfront, crypto };
  const context = createContext({
    require: (name: string) => {
      if (!(name in modules)) throw new Error(`cloudfront-js-2.0 has no module ${name}`);
      return modules[name];
    },
    console: { log: () => undefined },
  });
  const script = code.replace(/^import (\w+) from '([\w-]+)';$/gm, "const $1 = require('$2');");
  new Script(`${script}\nthis.__handler = handler;`).runInContext(context);
  const handler = (context as { __handler: (event: unknown) => Promise<FunctionResult> }).__handler;
  return async (event) => {
    selected = undefined;
    const request = {
      method: event.method,
      uri: event.uri,
      querystring: Object.fromEntries(Object.entries(event.query ?? {}).map(([name, value]) => [name, { value }])),
      headers: Object.fromEntries(Object.entries(event.headers ?? {}).map(([name, value]) => [name.toLowerCase(), { value }])),
      cookies: {},
    };
    const result = await handler({
      version: '1.0',
      context: { eventType: 'viewer-request', distributionDomainName: 'd111111abcdef8.cloudfront.net' },
      viewer: { ip: event.viewerIp ?? '198.51.100.7' },
      request,
    });
    return { result, origin: selected };
  };
}
