import type { RegistryConfig } from '../../config/config.js';
import type { AwsClients } from '../../storage/aws-clients.js';
import { WebhookStore } from '../../storage/webhook-store.js';
import type { WebhookSecrets } from '../../storage/webhook-secrets.js';
import type { Logger } from '../../support/logger.js';
import { eventBridgeEntries } from './event-bridge.js';
import { deletionOf, eventsOf } from './registry-event.js';
import { DeletionMarkers } from '../../storage/deletion-markers.js';
import type { StreamRecordHandler } from './stream-record.js';
import { DEFAULT_RETRY_DELAYS_SECONDS, TimerRetries, WebhookDispatcher, type DeliveryRetry, type RetryScheduler } from './webhook-dispatcher.js';

/** The input of a webhook retry schedule: what the dispatcher function receives from EventBridge Scheduler. */
export interface WebhookRetryInput {
  webhookRetry: DeliveryRetry;
}

export interface RegistryEvents {
  /** Events and webhooks of each committed change: one of the stream's handlers. */
  handler: StreamRecordHandler;
  webhooks: WebhookDispatcher;
  stop(): void;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * Events and webhooks as configured: EventBridge when a bus is named (in AWS), else a log line
 * per event; webhook secrets in SSM, or in files locally; retries as Scheduler schedules, or
 * timers locally. The AWS clients are loaded only here, never on the API's path.
 */
export async function createEvents(config: RegistryConfig, clients: AwsClients, logger: Logger): Promise<RegistryEvents> {
  const settings = config.events ?? { pullEvents: false, localTargets: false };
  const store = new WebhookStore(clients.dynamo, config.tableName);
  const secrets = await webhookSecrets(config);
  const timers = new TimerRetries();
  let retries: RetryScheduler = timers;
  if (settings.retrySchedule) {
    const { RetrySchedules } = await import('../../storage/retry-schedules.js');
    const schedules = RetrySchedules.inRegion(config.region, settings.retrySchedule);
    retries = {
      schedule: (retry, at) =>
        schedules.create(`webhook-${retry.key.split('#')[1]}-${at.getTime()}`.slice(0, 64), at, { webhookRetry: retry } satisfies WebhookRetryInput),
    };
  }
  const webhooks = new WebhookDispatcher(
    store,
    secrets,
    retries,
    {
      source: settings.source ?? config.frontDoor?.url ?? `urn:registry:${config.tableName}`,
      policy: { localTargets: settings.localTargets },
      retryDelaysSeconds: settings.retryDelaysSeconds ?? DEFAULT_RETRY_DELAYS_SECONDS,
      timeoutMs: settings.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    },
    logger,
  );
  timers.attach((retry) => webhooks.retry(retry), logger);
  let publish: (entries: ReturnType<typeof eventBridgeEntries>) => Promise<void> = async () => undefined;
  if (settings.eventBusName) {
    const { EventBus } = await import('../../storage/event-bus.js');
    const bus = EventBus.inRegion(config.region, settings.eventBusEndpoint);
    publish = (entries) => bus.put(entries);
  }
  const deletions = new DeletionMarkers(clients.dynamo, config.tableName);
  const handler: StreamRecordHandler = async (record) => {
    let events = eventsOf(record).filter((event) => settings.pullEvents || event.kind !== 'pull');
    if (events.length === 0) return;
    // A delete's why and who: its marker, one read per deleted manifest or tag.
    const deletion = deletionOf(record);
    const marker = deletion && (await deletions.find(deletion.repository, deletion.sortKey, deletion.writtenAt));
    if (marker) events = events.map((event) => ({ ...event, ...marker }));
    for (const event of events)
      logger.info('registry event', { id: event.id, type: event.type, repository: event.repository, digest: event.digest, tags: event.tags });
    await publish(events.flatMap((event) => eventBridgeEntries(event, settings.eventBusName)));
    await webhooks.deliver(events);
  };
  return { handler, webhooks, stop: () => timers.stop() };
}

/** Where webhook secrets are: files locally (WEBHOOK_SECRETS_DIR), SSM SecureStrings in AWS. */
export async function webhookSecrets(config: Pick<RegistryConfig, 'region' | 'tableName' | 'events'>): Promise<WebhookSecrets> {
  const storage = await import('../../storage/webhook-secrets.js');
  if (config.events?.secretsDir) return new storage.FileWebhookSecrets(config.events.secretsDir);
  const { SSMClient } = await import('@aws-sdk/client-ssm');
  return new storage.SsmWebhookSecrets(new SSMClient({ region: config.region }), config.tableName);
}
