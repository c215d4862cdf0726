import type { Context } from 'aws-lambda';
import { configFromEnv } from '../registry/config/config.js';
import { createApp } from '../registry/app.js';
import { createAwsClients } from '../registry/storage/aws-clients.js';
import { jsonLogger } from '../registry/support/logger.js';
import type { CopyRequest } from '../registry/services/pull-through/blob-copy.js';

const config = configFromEnv();
const app = createApp(config, createAwsClients(config), jsonLogger());

/** Time kept back from the Lambda timeout: the copy checkpoints and invokes itself again. */
const MARGIN_MS = 60_000;

/**
 * The pull-through copier (docs/pull-through.md, "Blobs"), invoked asynchronously with
 * `{digest, repository, upstream}`: copies one blob from its upstream into the cache, resuming
 * from the checkpoint the lease names; with a minute left it checkpoints and invokes itself
 * again, so no layer is too large. A failure throws, so that Lambda retries the event (its
 * retryAttempts); a copy someone else holds, or one done already, is skipped.
 */
export async function handler(event: CopyRequest, context: Context): Promise<{ outcome: string }> {
  const deadline = Date.now() + Math.max(context.getRemainingTimeInMillis() - MARGIN_MS, 10_000);
  const outcome = await app.services.pullThrough.blobs.copy(event, deadline);
  app.logger.info('pull-through copy', { digest: event.digest, upstream: event.upstream, repository: event.repository, outcome });
  return { outcome };
}
