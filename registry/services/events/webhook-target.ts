import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/** Where webhooks may be delivered (docs/events.md). */
export interface WebhookTargetPolicy {
  /** Local use: plain http and loopback addresses allowed, so that tests and `npm start` can receive. */
  localTargets: boolean;
}

/** The subscription's own permission: `--allow-private` lets it reach private, loopback and link-local addresses. */
export interface WebhookTargetOptions {
  allowPrivate?: boolean;
}

/** A target the policy refuses; the message says why and never carries more of the URL than its host. */
export class WebhookTargetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookTargetError';
  }
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Addresses no webhook reaches without `--allow-private`: private, shared, link-local (instance metadata), unspecified, multicast, reserved. */
const PRIVATE = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 3],
] as const) {
  PRIVATE.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
] as const) {
  PRIVATE.addSubnet(network, prefix, 'ipv6');
}

/** Why an address may not be reached, or undefined when it may. */
export function refusedAddress(address: string, policy: WebhookTargetPolicy, options: WebhookTargetOptions = {}): string | undefined {
  const family = isIP(address);
  if (family === 0) return `${address} is not an IP address`;
  // IPv4-mapped IPv6 (::ffff:169.254.169.254) is the IPv4 address.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  const [checked, type] = mapped ? [mapped, 'ipv4' as const] : [address, family === 4 ? ('ipv4' as const) : ('ipv6' as const)];
  if (options.allowPrivate) return undefined;
  if (policy.localTargets && LOOPBACK.check(checked, type)) return undefined;
  if (PRIVATE.check(checked, type)) return `${address} is a private, loopback or link-local address (allow it with --allow-private)`;
  return undefined;
}

/** Checks what can be checked of the URL itself: the scheme, and the host when it is an address. */
export function checkWebhookUrl(url: string, policy: WebhookTargetPolicy, options: WebhookTargetOptions = {}): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new WebhookTargetError('not a URL');
  }
  const allowed = policy.localTargets ? ['https:', 'http:'] : ['https:'];
  if (!allowed.includes(parsed.protocol)) throw new WebhookTargetError(`${parsed.protocol} URLs are refused: webhooks use ${allowed.join(' or ')}`);
  if (parsed.username || parsed.password) throw new WebhookTargetError('credentials in the URL are refused');
  const host = hostOf(parsed);
  if (isIP(host)) {
    const why = refusedAddress(host, policy, options);
    if (why) throw new WebhookTargetError(why);
  }
  return parsed;
}

/** Resolves the URL's host and checks every address it resolves to, for `webhook add`. */
export async function checkWebhookTarget(url: string, policy: WebhookTargetPolicy, options: WebhookTargetOptions = {}): Promise<URL> {
  const parsed = checkWebhookUrl(url, policy, options);
  const host = hostOf(parsed);
  if (isIP(host)) return parsed;
  const addresses = await new Promise<LookupAddress[]>((resolve, reject) =>
    dnsLookup(host, { all: true }, (error, found) => (error ? reject(new WebhookTargetError(`${host} does not resolve`)) : resolve(found))),
  );
  for (const { address } of addresses) {
    const why = refusedAddress(address, policy, options);
    if (why) throw new WebhookTargetError(`${host} resolves to ${why}`);
  }
  return parsed;
}

/**
 * A `lookup` for the delivery's socket that refuses what the policy refuses, so that the address
 * checked is the address connected to: a name that resolved to a public address when the
 * webhook was added and to 169.254.169.254 now (DNS rebinding) is refused at delivery.
 */
export function checkedLookup(policy: WebhookTargetPolicy, options: WebhookTargetOptions = {}): LookupFunction {
  return (hostname, lookupOptions, callback) => {
    dnsLookup(hostname, { ...lookupOptions, all: true }, (error, found) => {
      if (error) return callback(error, '', 0);
      const addresses = found as LookupAddress[];
      for (const { address } of addresses) {
        const why = refusedAddress(address, policy, options);
        if (why) return callback(new WebhookTargetError(`${hostname} resolves to ${why}`), '', 0);
      }
      if (lookupOptions.all) return (callback as unknown as (error: null, addresses: LookupAddress[]) => void)(null, addresses);
      const first = addresses[0];
      if (!first) return callback(new WebhookTargetError(`${hostname} does not resolve`), '', 0);
      callback(null, first.address, first.family);
    });
  };
}

function hostOf(url: URL): string {
  // IPv6 literals come bracketed.
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}
