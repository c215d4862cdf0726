import { Agent, type Server } from 'node:http';

/**
 * Idle keep-alive connections between the local CloudFront emulator and the origins behind it
 * (the API Gateway emulator, s3rver, the upload gateway), set as in AWS: the side that reuses
 * a connection (CloudFront) gives it up before the side that answers on it (the origin) does.
 *
 * CloudFront keeps an idle connection to an origin for its keep-alive timeout
 * (`OriginKeepaliveTimeout`: default 5 s, which lib/constructs/front-door.ts leaves as it is),
 * and AWS asks origins to keep theirs open longer. With both at Node's default of 5 s, a
 * request the distribution sends on a connection that has just been idle for 5 s can meet the
 * origin closing it: ECONNRESET, and the viewer gets a 502. (Node's agent gives the socket up a
 * second before the origin's `Keep-Alive: timeout=5` hint, but when the process gets no CPU for
 * about two seconds around that moment, it sends the waiting request on the socket before either
 * timer has run, and the origin's runs first: measured in test/scripts/local/cloudfront-emulator.test.ts.)
 */
export const DISTRIBUTION_ORIGIN_KEEPALIVE_MS = 5_000;

/** How long the local origins keep an idle connection: well past the distribution's 5 s. */
export const ORIGIN_SERVER_KEEPALIVE_MS = 65_000;

/** Makes `server` an origin that keeps idle connections longer than the distribution does. */
export function keepOriginConnectionsOpen(server: Server): Server {
  server.keepAliveTimeout = ORIGIN_SERVER_KEEPALIVE_MS;
  return server;
}

/**
 * The distribution's pool of origin connections: keep-alive, an idle connection given up after
 * `idleMs` (or a second before the origin's own `Keep-Alive: timeout` hint, when that is sooner).
 */
export function distributionOriginAgent(idleMs = DISTRIBUTION_ORIGIN_KEEPALIVE_MS): Agent {
  return new Agent({ keepAlive: true, timeout: idleMs, scheduling: 'lifo' });
}
