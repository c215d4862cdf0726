import type { App } from '../../registry/app.js';
import type { RegistryConfig } from '../../registry/config/config.js';
import { dispatchStreamRecords } from '../../registry/services/events/stream-record.js';
import { recordByRecord, startStreamPoller } from '../../registry/storage/table-stream.js';
import type { Logger } from '../../registry/support/logger.js';
import { LOCAL_CREDENTIALS } from './local-credentials.js';

/**
 * The stream dispatcher of `npm start`, in-process: DynamoDB Local's stream polled and every
 * record handed to the app's stream handlers (events, webhooks), as the dispatcher function is
 * in AWS (docs/events.md).
 */
export async function startLocalEventDispatcher(config: RegistryConfig, app: App, logger: Logger): Promise<{ stop(): Promise<void> }> {
  const handlers = await app.streamHandlers();
  const events = await app.events();
  const poller = await startStreamPoller({
    region: config.region,
    endpoint: config.dynamoEndpoint!,
    credentials: LOCAL_CREDENTIALS,
    tableName: config.tableName,
    handleBatch: recordByRecord((record) => dispatchStreamRecords([record], handlers), logger),
    logger,
  });
  return {
    async stop() {
      await poller.stop();
      events.stop();
    },
  };
}
