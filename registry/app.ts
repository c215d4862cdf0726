import type { RegistryConfig } from './config/config.js';
import type { RegistryHandler } from './model/http.js';
import type { Authorizer } from './services/auth/authorizer.js';
import { createServices, type RegistryServices } from './services/services.js';
import type { AwsClients } from './storage/aws-clients.js';
import type { Logger } from './support/logger.js';
import { createRegistry } from './api/registry.js';
import { behindFrontDoor } from './api/front-door.js';
import { createEvents, type RegistryEvents } from './services/events/events.js';
import type { StreamRecordHandler } from './services/events/stream-record.js';
import { auditForwarder } from './services/audit/audit-forwarder.js';

/** The registry wired once for an entry point: its services and the API over them. */
export interface App {
  config: RegistryConfig;
  clients: AwsClients;
  services: RegistryServices;
  logger: Logger;
  /** The OCI API over these services; open to anyone without an authorizer (registry:2's mode). */
  registry(authorizer?: Authorizer): RegistryHandler;
  /** Events and webhooks (docs/events.md), made on first use: only the stream's consumers need them. */
  events(): Promise<RegistryEvents>;
  /** What acts on each committed change of the table, in order (the stream dispatcher runs them). */
  streamHandlers(): Promise<StreamRecordHandler[]>;
}

/**
 * The one wiring of the registry, for every entry point: the Lambda functions, the upload
 * gateway, `npm start` and the CLIs' in-process runs. Built once per process (per cold start
 * in Lambda) and shared by every request.
 */
export function createApp(config: RegistryConfig, clients: AwsClients, logger: Logger): App {
  const services = createServices(config, clients, logger);
  let events: Promise<RegistryEvents> | undefined;
  let forwarder: StreamRecordHandler | undefined;
  const app: App = {
    config,
    clients,
    services,
    logger,
    registry: (authorizer) => behindFrontDoor(createRegistry(services, logger, authorizer), config.frontDoor, logger),
    events: () => {
      events ??= createEvents(config, clients, logger);
      return events;
    },
    streamHandlers: async () => {
      const logGroupName = config.audit?.logGroupName;
      // In AWS (AUDIT_LOG_GROUP): audit records to their log group too (docs/audit-log.md).
      if (logGroupName && !forwarder) {
        // Imported here: only the dispatcher needs the CloudWatch Logs client in its bundle.
        const { auditLogGroupFor } = await import('./storage/audit-log-group.js');
        forwarder = auditForwarder(auditLogGroupFor(config.region, logGroupName));
      }
      return [(await app.events()).handler, ...(forwarder ? [forwarder] : [])];
    },
  };
  return app;
}
