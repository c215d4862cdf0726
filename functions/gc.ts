import type { Context } from 'aws-lambda';
import { configFromEnv } from '../registry/config/config.js';
import { createApp } from '../registry/app.js';
import { gcSettingsFromEnv } from '../registry/services/gc/settings.js';
import { runMaintenance, type MaintenanceReport } from '../registry/services/maintenance/run-maintenance.js';
import { createAwsClients } from '../registry/storage/aws-clients.js';
import { jsonLogger } from '../registry/support/logger.js';

const config = configFromEnv();
const app = createApp(config, createAwsClients(config), jsonLogger());
const settings = gcSettingsFromEnv();

/** The EventBridge schedule's target: retention, then garbage collection, within the Lambda timeout. */
export async function handler(_event: unknown, context: Pick<Context, 'getRemainingTimeInMillis'>): Promise<MaintenanceReport> {
  const deadline = Date.now() + context.getRemainingTimeInMillis() - settings.deadlineMarginSeconds * 1000;
  return runMaintenance(app.config, app.clients, app.services, settings, deadline, app.logger);
}
