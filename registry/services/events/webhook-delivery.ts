import { createHmac, randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { RegistryEvent } from './registry-event.js';
import { checkWebhookUrl, checkedLookup, type WebhookTargetOptions, type WebhookTargetPolicy } from './webhook-target.js';

/** The headers of a delivery (docs/events.md). */
export const SIGNATURE_HEADER = 'X-Registry-Signature-256';
export const DELIVERY_HEADER = 'X-Registry-Delivery';
export const TIMESTAMP_HEADER = 'X-Registry-Timestamp';
export const EVENT_TYPE_HEADER = 'X-Registry-Event';

/** The CloudEvents `type` of a registry event: `registry.manifest.pushed`, … (and `registry.ping` for `webhook test`). */
export function cloudEventType(type: RegistryEvent['type'] | 'ping'): string {
  return `registry.${type}`;
}

/**
 * The body of a delivery: a CloudEvents 1.0 event in structured mode (the envelope is in the
 * JSON, so that one signature covers id, time and data). `id` is the registry event's: the same
 * on every redelivery and retry, what a receiver dedupes on.
 */
export function cloudEventBody(event: RegistryEvent, source: string): string {
  const { id, type, time, kind: _kind, ...data } = event;
  const tag = event.tags.length === 1 ? `:${event.tags[0]}` : '';
  return JSON.stringify({
    specversion: '1.0',
    id,
    source,
    type: cloudEventType(type),
    subject: `${event.repository}${tag}`,
    time,
    datacontenttype: 'application/json',
    data,
  });
}

export function pingBody(name: string, source: string): string {
  return JSON.stringify({
    specversion: '1.0',
    id: randomUUID(),
    source,
    type: cloudEventType('ping'),
    subject: name,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data: { webhook: name },
  });
}

/** `sha256=<hex HMAC-SHA256 of the body>`. */
export function signatureOf(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export interface AttemptResult {
  outcome: 'delivered' | 'retry' | 'failed';
  statusCode?: number;
  /** Why it did not go: refused target, timeout, connection error (never the URL's path or query). */
  error?: string;
  latencyMs: number;
}

export interface SendOptions {
  url: string;
  body: string;
  secret: string;
  deliveryId: string;
  eventType: string;
  policy: WebhookTargetPolicy;
  target: WebhookTargetOptions;
  timeoutMs: number;
}

/**
 * One POST of a delivery. 2xx delivered; 5xx, 408, 429, timeouts and connection errors are
 * retried; any other answer (4xx, a redirect: never followed, it could lead anywhere) fails for
 * good, as does a target the policy refuses. The address connected to is the one checked.
 */
export async function sendDelivery(options: SendOptions): Promise<AttemptResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  let url: URL;
  try {
    url = checkWebhookUrl(options.url, options.policy, options.target);
  } catch (error) {
    return { outcome: 'failed', error: (error as Error).message, latencyMs: 0 };
  }
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<AttemptResult>((resolve) => {
    let settled = false;
    const finish = (result: Omit<AttemptResult, 'latencyMs'>) => {
      if (settled) return;
      settled = true;
      resolve({ ...result, latencyMs: elapsed() });
    };
    const outgoing = request(
      url,
      {
        method: 'POST',
        lookup: checkedLookup(options.policy, options.target),
        timeout: options.timeoutMs,
        headers: {
          'Content-Type': 'application/cloudevents+json; charset=utf-8',
          'Content-Length': Buffer.byteLength(options.body),
          'User-Agent': 'serverless-oci-registry-webhook/1',
          [SIGNATURE_HEADER]: signatureOf(options.body, options.secret),
          [DELIVERY_HEADER]: options.deliveryId,
          [TIMESTAMP_HEADER]: String(Math.floor(Date.now() / 1000)),
          [EVENT_TYPE_HEADER]: options.eventType,
        },
      },
      (response) => {
        response.resume();
        const status = response.statusCode ?? 0;
        response.on('end', () => finish({ outcome: classify(status), statusCode: status }));
        response.on('error', () => finish({ outcome: classify(status), statusCode: status }));
      },
    );
    outgoing.on('timeout', () => {
      outgoing.destroy(new Error(`no answer within ${options.timeoutMs} ms`));
    });
    outgoing.on('error', (error) => {
      const refused = error.name === 'WebhookTargetError';
      finish({ outcome: refused ? 'failed' : 'retry', error: error.message });
    });
    outgoing.end(options.body);
  });
}

function classify(status: number): AttemptResult['outcome'] {
  if (status >= 200 && status < 300) return 'delivered';
  if (status >= 500 || status === 408 || status === 429) return 'retry';
  return 'failed';
}
