import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { totalmem } from 'node:os';
import type { RegistryHandler } from '../model/http.js';
import type { Logger } from '../support/logger.js';
import { createNodeServer } from './node-server.js';

/**
 * ALB's longest idle timeout is 4000 s; the target must keep idle connections open longer than
 * the load balancer does, or the ALB may reuse a connection the server is closing (a 502).
 */
export const KEEP_ALIVE_TIMEOUT_MS = 4_100_000;

/**
 * Long-lived connections for multi-GB bodies: no total request timeout, but a body that sends
 * nothing for `bodyIdleTimeoutMs` is dropped (node-server.ts); long keep-alive for the ALB.
 * Paths reach the handlers percent-encoded, as the ALB passes them.
 */
export function createUploadGatewayServer(handler: RegistryHandler, logger: Logger, options: { bodyIdleTimeoutMs?: number } = {}): Server {
  const server = createNodeServer(handler, logger, { bodyIdleTimeoutMs: options.bodyIdleTimeoutMs, decodePath: false });
  // Node counts the header timeout from a request's first byte, not from the end of the last
  // request, so it may stay short (60 s, node-server.ts) under a long keep-alive.
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  return server;
}

/** The task's memory: as configured (UPLOAD_GATEWAY_MEMORY_MIB), else the cgroup's limit, else the host's. */
export function taskMemoryMiB(configured: number | undefined): number {
  if (configured !== undefined) return configured;
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const limit = Number(readFileSync(file, 'utf8').trim());
      if (Number.isFinite(limit) && limit > 0 && limit < totalmem()) return Math.floor(limit / (1024 * 1024));
    } catch {
      // No such cgroup file here: try the next.
    }
  }
  return Math.floor(totalmem() / (1024 * 1024));
}
