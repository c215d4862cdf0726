import type { Context, DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { configFromEnv } from '../registry/config/config.js';
import { createApp, type App } from '../registry/app.js';
import type { WebhookRetryInput } from '../registry/services/events/events.js';
import { dispatchStreamRecords } from '../registry/services/events/stream-record.js';
import { createAwsClients } from '../registry/storage/aws-clients.js';
import { plainStreamRecord, type RawStreamRecord } from '../registry/storage/table-stream.js';
import { jsonLogger } from '../registry/support/logger.js';

let app: App | undefined;

/**
 * Built on the first invocation: retry schedules invoke this function, whose ARN it learns from
 * its context (the CDK cannot write a function's own ARN into its environment).
 */
function appFor(context: Pick<Context, 'invokedFunctionArn'> | undefined): App {
  if (!app) {
    const config = configFromEnv({
      ...process.env,
      WEBHOOK_RETRY_FUNCTION_ARN: process.env.WEBHOOK_RETRY_ROLE_ARN ? context?.invokedFunctionArn : undefined,
    });
    app = createApp(config, createAwsClients(config), jsonLogger());
  }
  return app;
}

/**
 * The metadata table's stream (docs/events.md): each record, in order, to the stream handlers
 * (events to EventBridge and webhooks; the audit forwarder). The first record that fails is
 * reported, so that Lambda hands it and those after it over again (ReportBatchItemFailures;
 * with bisection and an on-failure destination, nothing is dropped silently). Also the target of
 * the webhook retry schedules EventBridge Scheduler runs.
 */
export async function handler(event: DynamoDBStreamEvent | WebhookRetryInput, context?: Context): Promise<DynamoDBBatchResponse | undefined> {
  const app = appFor(context);
  if ('webhookRetry' in event) {
    await (await app.events()).webhooks.retry(event.webhookRetry);
    return undefined;
  }
  const handlers = await app.streamHandlers();
  for (const record of event.Records) {
    try {
      await dispatchStreamRecords([plainStreamRecord(record as RawStreamRecord)], handlers);
    } catch (error) {
      app.logger.error('stream record failed', { eventId: record.eventID, error: String(error) });
      return { batchItemFailures: [{ itemIdentifier: record.dynamodb?.SequenceNumber ?? '' }] };
    }
  }
  return { batchItemFailures: [] };
}
