import type { Context } from 'aws-lambda';
import { configFromEnv } from './commons/config.js';
import { createAwsClients } from './commons/storage/aws-clients.js';
import { createServices } from './commons/services.js';
import { jsonLogger } from './commons/logger.js';
import { gcSettingsFromEnv } from './commons/gc/settings.js';
import { runMaintenance, type MaintenanceReport } from './commons/maintenance/run-maintenance.js';

const config = configFromEnv();
const clients = createAwsClients(config);
const services = createServices(config, clients);
const settings = gcSettingsFromEnv();
const logger = jsonLogger();

/** The EventBridge schedule's target: retention, then garbage collection, within the Lambda timeout. */
export async function handler(_event: unknown, context: Pick<Context, 'getRemainingTimeInMillis'>): Promise<MaintenanceReport> {
  const deadline = Date.now() + context.getRemainingTimeInMillis() - settings.deadlineMarginSeconds * 1000;
  return runMaintenance(config, clients, services, settings, deadline, logger);
}
