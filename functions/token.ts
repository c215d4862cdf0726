import { authConfigFromEnv, configFromEnv } from '../registry/config/config.js';
import { createTokenEndpoint } from '../registry/api/token-endpoint.js';
import { deployedTokenService } from '../registry/services/auth/deployed-auth.js';
import { createAwsClients } from '../registry/storage/aws-clients.js';
import { jsonLogger } from '../registry/support/logger.js';
import { lambdaHandler } from '../registry/transport/lambda-adapter.js';
import { behindFrontDoor } from '../registry/api/front-door.js';
import { withUploadTicketSecret } from '../registry/services/uploads/upload-tickets.js';

const config = await withUploadTicketSecret(configFromEnv());
const logger = jsonLogger();

/** The Docker token endpoint (`GET|POST /token`) behind API Gateway. */
export const handler = lambdaHandler(
  behindFrontDoor(
    createTokenEndpoint(await deployedTokenService(config, authConfigFromEnv(), createAwsClients(config), logger), logger),
    config.frontDoor,
    logger,
  ),
);
