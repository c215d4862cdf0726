/** A webhook receiver for tests: records every delivery, answers with the statuses it is told to. */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedDelivery {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  event: { id: string; type: string; subject: string; source: string; specversion: string; time: string; data: Record<string, unknown> };
  receivedAt: number;
}

export interface WebhookReceiver {
  url: string;
  deliveries: ReceivedDelivery[];
  /** Statuses to answer with, in order; 204 once they run out. */
  answers: number[];
  /** Resolves with the first delivery (from now on, or already received) that `match` accepts. */
  waitFor(match: (delivery: ReceivedDelivery) => boolean, timeoutMs?: number): Promise<ReceivedDelivery>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const deliveries: ReceivedDelivery[] = [];
  const waiters = new Set<() => void>();
  const receiver = { deliveries, answers: [] as number[] } as WebhookReceiver;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      deliveries.push({ path: request.url ?? '', headers: request.headers, body, event: JSON.parse(body), receivedAt: Date.now() });
      response.statusCode = receiver.answers.shift() ?? 204;
      response.end();
      for (const wake of waiters) wake();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  receiver.waitFor = (match, timeoutMs = 15_000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = deliveries.find(match);
        if (!found) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching delivery within ${timeoutMs} ms (got ${deliveries.map((d) => d.event.type).join(', ') || 'none'})`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  receiver.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return receiver;
}

/** What a receiver does: recompute the HMAC-SHA256 of the body and compare in constant time. */
export function signatureValid(delivery: ReceivedDelivery, secret: string): boolean {
  const header = String(delivery.headers['x-registry-signature-256'] ?? '');
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(delivery.body).digest('hex')}`);
  const given = Buffer.from(header);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
