import type { RegistryConfig } from './config/config.js';
import type { RegistryHandler } from './model/http.js';
import type { Authorizer } from './services/auth/authorizer.js';
import { createServices, type RegistryServices } from './services/services.js';
import type { AwsClients } from './storage/aws-clients.js';
import type { Logger } from './support/logger.js';
import { createRegistry } from './api/registry.js';
import { behindFrontDoor } from './api/front-door.js';

/** The registry wired once for an entry point: its services and the API over them. */
export interface App {
  config: RegistryConfig;
  clients: AwsClients;
  services: RegistryServices;
  logger: Logger;
  /** The OCI API over these services; open to anyone without an authorizer (registry:2's mode). */
  registry(authorizer?: Authorizer): RegistryHandler;
}

/**
 * The one wiring of the registry, for every entry point: the Lambda functions, the upload
 * gateway, `npm start` and the CLIs' in-process runs. Built once per process (per cold start
 * in Lambda) and shared by every request.
 */
export function createApp(config: RegistryConfig, clients: AwsClients, logger: Logger): App {
  const services = createServices(config, clients, logger);
  return {
    config,
    clients,
    services,
    logger,
    registry: (authorizer) => behindFrontDoor(createRegistry(services, logger, authorizer), config.frontDoor, logger),
  };
}
