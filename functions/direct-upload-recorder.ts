import type { S3Event } from 'aws-lambda';
import { configFromEnv } from '../registry/config/config.js';
import { createApp } from '../registry/app.js';
import { createAwsClients } from '../registry/storage/aws-clients.js';
import { jsonLogger } from '../registry/support/logger.js';

const config = configFromEnv();
const app = createApp(config, createAwsClients(config), jsonLogger());

/**
 * The S3 ObjectCreated notification on `direct/` (docs/front-door.md): records each blob the
 * front door put straight into the bucket and links it into its session's repository. A failure
 * throws, so that Lambda retries the event; recording again is harmless.
 */
export async function handler(event: S3Event): Promise<void> {
  for (const record of event.Records) {
    // Keys arrive URL-encoded, with spaces as '+'.
    const key = decodeURIComponent(record.s3.object.key.replace(/\+/g, ' '));
    const recorded = await app.services.directUploadRecording.recordObject(key);
    app.logger.info('direct upload', { key, recorded: recorded !== undefined });
  }
}
