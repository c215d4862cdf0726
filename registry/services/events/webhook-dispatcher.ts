import { createHash } from 'node:crypto';
import { patternMatches } from '../../model/auth/access-model.js';
import type { Logger } from '../../support/logger.js';
import type { WebhookDelivery, WebhookStore, WebhookSubscription } from '../../storage/webhook-store.js';
import type { WebhookSecrets } from '../../storage/webhook-secrets.js';
import type { RegistryEvent } from './registry-event.js';
import { cloudEventBody, cloudEventType, pingBody, sendDelivery, type AttemptResult } from './webhook-delivery.js';
import type { WebhookTargetPolicy } from './webhook-target.js';

/** A delivery to try again later: what a retry schedule carries (small: the body stays in the table). */
export interface DeliveryRetry {
  name: string;
  key: string;
}

/**
 * Runs a retry at a time: EventBridge Scheduler one-time schedules in AWS (nothing runs while
 * nothing waits), a timer in the process locally.
 */
export interface RetryScheduler {
  schedule(retry: DeliveryRetry, at: Date): Promise<void>;
}

export interface WebhookSettings {
  /** The CloudEvents `source`: the registry's public URL. */
  source: string;
  policy: WebhookTargetPolicy;
  /** Seconds before each retry; after the last one the delivery fails for good. */
  retryDelaysSeconds: readonly number[];
  timeoutMs: number;
}

/** Backoff for more than a day: 10 s, 1 min, 5 min, 30 min, 2 h, 6 h, 12 h, 24 h (about 45 h in all). */
export const DEFAULT_RETRY_DELAYS_SECONDS = [10, 60, 300, 1800, 7200, 21_600, 43_200, 86_400];
/** Subscriptions are read again after this long: a new webhook gets events within it. */
const SUBSCRIPTIONS_CACHE_MS = 5_000;

/** Delivers registry events to the webhooks that subscribe to them (docs/events.md). */
export class WebhookDispatcher {
  private subscriptions: { list: WebhookSubscription[]; readAt: number } | undefined;

  constructor(
    private readonly store: WebhookStore,
    private readonly secrets: WebhookSecrets,
    private readonly retries: RetryScheduler,
    private readonly settings: WebhookSettings,
    private readonly logger: Logger,
  ) {}

  /**
   * One delivery per event and subscribed webhook, each tried once now; a failure that may pass
   * is scheduled for retry. Throws only when a delivery could be neither recorded nor scheduled,
   * so that the stream hands the record over again.
   */
  async deliver(events: readonly RegistryEvent[]): Promise<void> {
    if (events.length === 0) return;
    const subscriptions = await this.currentSubscriptions();
    const work: Promise<void>[] = [];
    for (const event of events) {
      for (const subscription of subscriptions) {
        if (!subscription.events.includes(event.kind) || !patternMatches(subscription.pattern, event.repository)) continue;
        work.push(this.start(subscription, event));
      }
    }
    const failed = (await Promise.allSettled(work)).filter((result) => result.status === 'rejected');
    if (failed.length > 0) throw (failed[0] as PromiseRejectedResult).reason;
  }

  /** A scheduled retry: tries the delivery again unless it is settled or its webhook is gone. */
  async retry(retry: DeliveryRetry): Promise<void> {
    const delivery = await this.store.getDelivery(retry.name, retry.key);
    if (!delivery || delivery.status === 'delivered' || delivery.status === 'failed') return;
    const subscription = await this.store.get(retry.name);
    if (!subscription) {
      await this.store.recordAttempt(retry.name, retry.key, {
        ...delivery,
        status: 'failed',
        error: 'the webhook was removed',
        updatedAt: Date.now(),
      });
      return;
    }
    await this.attempt(subscription, delivery);
  }

  /** `webhook test`: a signed ping, recorded among the deliveries, never retried. */
  async ping(name: string): Promise<AttemptResult> {
    const subscription = await this.store.get(name);
    if (!subscription) throw new Error(`no webhook ${name}`);
    const body = pingBody(name, this.settings.source);
    const now = Date.now();
    const deliveryId = hashId(`${name}:ping:${now}:${Math.random()}`);
    const delivery: WebhookDelivery = {
      name,
      key: `${new Date(now).toISOString()}#${deliveryId}`,
      deliveryId,
      eventId: JSON.parse(body).id,
      eventType: cloudEventType('ping'),
      body,
      status: 'pending',
      attempts: 0,
      updatedAt: now,
    };
    await this.store.startDelivery(delivery);
    return this.attempt(subscription, delivery, { retry: false });
  }

  private async start(subscription: WebhookSubscription, event: RegistryEvent): Promise<void> {
    // The same event and webhook always make the same delivery: a redelivered stream record finds it.
    const deliveryId = hashId(`${subscription.name}:${event.id}`);
    const delivery: WebhookDelivery = {
      name: subscription.name,
      key: `${event.time}#${deliveryId}`,
      deliveryId,
      eventId: event.id,
      eventType: cloudEventType(event.type),
      body: cloudEventBody(event, this.settings.source),
      status: 'pending',
      attempts: 0,
      updatedAt: Date.now(),
    };
    if (!(await this.store.startDelivery(delivery))) {
      const recorded = await this.store.getDelivery(delivery.name, delivery.key);
      // Attempted already (and settled or scheduled): nothing more to do here.
      if (!recorded || recorded.attempts > 0) return;
    }
    await this.attempt(subscription, delivery);
  }

  private async attempt(subscription: WebhookSubscription, delivery: WebhookDelivery, options = { retry: true }): Promise<AttemptResult> {
    const secret = await this.secrets.get(subscription.name);
    const attempts = delivery.attempts + 1;
    const result: AttemptResult = secret
      ? await sendDelivery({
          url: subscription.url,
          body: delivery.body,
          secret,
          deliveryId: delivery.deliveryId,
          eventType: delivery.eventType,
          policy: this.settings.policy,
          target: { allowPrivate: subscription.allowPrivate },
          timeoutMs: this.settings.timeoutMs,
        })
      : { outcome: 'failed', error: 'the webhook has no secret', latencyMs: 0 };
    const delay = options.retry && result.outcome === 'retry' ? this.settings.retryDelaysSeconds[attempts - 1] : undefined;
    const now = Date.now();
    const nextAttemptAt = delay === undefined ? undefined : now + delay * 1000;
    const status = result.outcome === 'delivered' ? 'delivered' : nextAttemptAt !== undefined ? 'retrying' : 'failed';
    // Scheduled before the attempt is recorded: a schedule that fails leaves the delivery at its
    // attempts so far, and the stream's redelivery of the record tries it again; the other way
    // round a recorded attempt without a schedule would wait for ever.
    if (nextAttemptAt !== undefined) await this.retries.schedule({ name: subscription.name, key: delivery.key }, new Date(nextAttemptAt));
    await this.store.recordAttempt(subscription.name, delivery.key, {
      status,
      attempts,
      statusCode: result.statusCode,
      error: result.error,
      latencyMs: result.latencyMs,
      nextAttemptAt,
      updatedAt: now,
    });
    // The webhook's name and the outcome only: never its URL, body or secret.
    this.logger.info('webhook delivery', {
      webhook: subscription.name,
      deliveryId: delivery.deliveryId,
      eventId: delivery.eventId,
      attempt: attempts,
      status,
      statusCode: result.statusCode,
      latencyMs: result.latencyMs,
    });
    return result;
  }

  private async currentSubscriptions(): Promise<WebhookSubscription[]> {
    if (!this.subscriptions || Date.now() - this.subscriptions.readAt > SUBSCRIPTIONS_CACHE_MS) {
      this.subscriptions = { list: await this.store.list(), readAt: Date.now() };
    }
    return this.subscriptions.list;
  }
}

function hashId(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

/** Locally: each retry a timer in this process (lost if the process stops; docs/events.md). */
export class TimerRetries implements RetryScheduler {
  private readonly timers = new Set<NodeJS.Timeout>();
  private run: ((retry: DeliveryRetry) => Promise<void>) | undefined;

  /** Set once the dispatcher exists (it and this scheduler need each other). */
  attach(run: (retry: DeliveryRetry) => Promise<void>, logger: Logger): void {
    this.run = (retry) => run(retry).catch((error: unknown) => logger.error('webhook retry failed', { webhook: retry.name, error: String(error) }));
  }

  async schedule(retry: DeliveryRetry, at: Date): Promise<void> {
    const timer = setTimeout(
      () => {
        this.timers.delete(timer);
        void this.run?.(retry);
      },
      Math.max(0, at.getTime() - Date.now()),
    );
    timer.unref();
    this.timers.add(timer);
  }

  stop(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}
