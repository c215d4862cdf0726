import { createHash, createHmac } from 'node:crypto';
import { Script, createContext } from 'node:vm';

/**
 * A CloudFront Function (runtime cloudfront-js-2.0) as CloudFront runs it, for the local
 * CloudFront emulator: the code is refused when CloudFront would refuse it (over 10 KB, or
 * requiring anything but the `cloudfront` and `crypto` modules), and it runs in its own V8
 * context with only what the runtime offers: the language's built-ins, `Buffer`, `console`,
 * `require('crypto')` (hashes and HMAC) and `require('cloudfront')` (the KeyValueStore and
 * origin selection). There are no timers, no `fetch`, no `process`, no `eval` or `Function`
 * from strings, and each invocation gets a fresh context, as each CloudFront invocation is
 * isolated.
 *
 * This checks fidelity, not security: host objects such as `Buffer` come from this process's
 * realm, so code written to escape could. It runs only the project's own function.
 */

export const MAX_FUNCTION_CODE_BYTES = 10 * 1024;
const ALLOWED_MODULES = new Set(['cloudfront', 'crypto']);

export class FunctionCodeRefused extends Error {
  constructor(
    readonly code: 'FunctionSizeLimitExceeded' | 'InvalidArgument',
    message: string,
  ) {
    super(message);
    this.name = 'FunctionCodeRefused';
  }
}

/** One value of the event's headers, query string or cookies. */
export interface CfValue {
  value: string;
  multiValue?: { value: string }[];
}

export interface CfRequest {
  method: string;
  uri: string;
  querystring: Record<string, CfValue>;
  headers: Record<string, CfValue>;
  cookies: Record<string, CfValue>;
}

export interface CfResponse {
  statusCode: number;
  statusDescription?: string;
  headers?: Record<string, CfValue>;
  cookies?: Record<string, CfValue>;
  body?: string | { data: string; encoding: 'text' | 'base64' };
}

export interface ViewerRequestEvent {
  version: '1.0';
  context: { distributionDomainName: string; distributionId: string; eventType: 'viewer-request'; requestId: string };
  viewer: { ip: string };
  request: CfRequest;
}

export interface ViewerRequestOutcome {
  /** The request to send on, or the response the function answered with. */
  result: { request: CfRequest } | { response: CfResponse };
  /** The origin chosen with cf.selectRequestOriginById, if any. */
  originId?: string;
}

export interface CloudFrontFunction {
  run(event: ViewerRequestEvent): Promise<ViewerRequestOutcome>;
}

/**
 * Checks and compiles the code; `originIds` are the distribution's origins (selecting any other
 * fails the invocation, as in CloudFront), `kvs` the associated KeyValueStore's content.
 */
export function loadCloudFrontFunction(
  code: string,
  options: { originIds: readonly string[]; kvs: ReadonlyMap<string, string> },
): CloudFrontFunction {
  const size = Buffer.byteLength(code);
  if (size > MAX_FUNCTION_CODE_BYTES) {
    throw new FunctionCodeRefused(
      'FunctionSizeLimitExceeded',
      `The function code is ${size} bytes; CloudFront Functions take at most ${MAX_FUNCTION_CODE_BYTES}.`,
    );
  }
  for (const module of requiredModules(code)) {
    if (!ALLOWED_MODULES.has(module)) {
      throw new FunctionCodeRefused(
        'InvalidArgument',
        `The function requires module "${module}"; cloudfront-js-2.0 offers only cloudfront and crypto.`,
      );
    }
  }
  const script = new Script(`${asScript(code)}\n;handler;`, { filename: 'front-door.js' });

  return {
    async run(event) {
      let originId: string | undefined;
      const cloudfront = Object.freeze({
        kvs: () => keyValueStore(options.kvs),
        selectRequestOriginById(id: string) {
          if (!options.originIds.includes(id)) throw new Error(`selectRequestOriginById: the distribution has no origin "${id}"`);
          originId = id;
        },
        updateRequestOrigin() {
          throw new Error('updateRequestOrigin is not emulated locally: select an origin by id');
        },
      });
      const require = (name: string) => {
        if (name === 'cloudfront') return cloudfront;
        if (name === 'crypto') return CRYPTO;
        throw new Error(`Cannot find module '${name}'`);
      };
      const context = createContext(
        { require, Buffer, console: { log: (...args: unknown[]) => console.error('[cloudfront function]', ...args) } },
        { codeGeneration: { strings: false, wasm: false } },
      );
      const handler = script.runInContext(context, { timeout: 100 }) as unknown;
      if (typeof handler !== 'function') throw new Error('The function code defines no handler(event) function');
      // The event crosses into the function's realm as plain data.
      const result = (await (handler as (event: unknown) => unknown)(JSON.parse(JSON.stringify(event)))) as CfRequest | CfResponse;
      if (result === null || typeof result !== 'object') throw new Error('The function returned neither a request nor a response');
      const plain = JSON.parse(JSON.stringify(result)) as CfRequest | CfResponse;
      return { result: 'statusCode' in plain ? { response: plain } : { request: plain }, originId };
    },
  };
}

/** The modules the code requires or imports. */
function requiredModules(code: string): string[] {
  const modules: string[] = [];
  for (const match of code.matchAll(/\brequire\s*\(\s*(['"`])([^'"`]*)\1\s*\)/g)) modules.push(match[2]!);
  for (const match of code.matchAll(/^\s*import\s+[^;]*?\s+from\s+(['"])([^'"]+)\1/gm)) modules.push(match[2]!);
  for (const match of code.matchAll(/\bimport\s*\(/g)) modules.push(`dynamic import at ${match.index}`);
  return modules;
}

/** cloudfront-js-2.0 accepts `import x from 'm'`; a vm script has no imports, so they become requires. */
function asScript(code: string): string {
  return code.replace(
    /^(\s*)import\s+([\w$]+|\{[^}]*\})\s+from\s+(['"][^'"]+['"])\s*;?/gm,
    (_whole, indent: string, binding: string, module: string) => {
      const target = binding.startsWith('{') ? binding.replace(/\bas\b/g, ':') : binding;
      return `${indent}const ${target} = require(${module});`;
    },
  );
}

type Encoding = 'hex' | 'base64' | 'base64url';
const ENCODINGS = new Set(['hex', 'base64', 'base64url']);
const ALGORITHMS = new Set(['md5', 'sha1', 'sha256']);

/** The runtime's crypto module: createHash and createHmac for md5, sha1 and sha256; digest() without an encoding is a Buffer. */
const CRYPTO = Object.freeze({
  createHash: (algorithm: string) => digester(algorithm, () => createHash(algorithm)),
  createHmac: (algorithm: string, key: string | Buffer) => digester(algorithm, () => createHmac(algorithm, key)),
});

function digester(algorithm: string, create: () => ReturnType<typeof createHash> | ReturnType<typeof createHmac>) {
  if (!ALGORITHMS.has(algorithm)) throw new Error(`crypto: unsupported algorithm "${algorithm}"`);
  const hash = create();
  const self = {
    update(data: string | Buffer) {
      hash.update(data);
      return self;
    },
    digest(encoding?: Encoding) {
      if (encoding !== undefined && !ENCODINGS.has(encoding)) throw new Error(`crypto: unsupported encoding "${encoding}"`);
      return encoding ? hash.digest(encoding) : hash.digest();
    },
  };
  return self;
}

/** The KeyValueStore handle of `cf.kvs()`: get (string, json or bytes), exists, meta. */
function keyValueStore(entries: ReadonlyMap<string, string>) {
  return Object.freeze({
    async get(key: string, options?: { format?: 'string' | 'json' | 'bytes' }) {
      const value = entries.get(key);
      if (value === undefined) throw new Error(`KeyValueStore: key "${key}" not found`);
      if (options?.format === 'json') return JSON.parse(value) as unknown;
      if (options?.format === 'bytes') return Buffer.from(value);
      return value;
    },
    exists: async (key: string) => entries.has(key),
    meta: async () => ({ creationDateTime: new Date(0).toISOString(), lastUpdatedDateTime: new Date().toISOString(), keyCount: entries.size }),
  });
}
