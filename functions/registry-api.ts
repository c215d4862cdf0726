import { authConfigFromEnv, configFromEnv } from '../registry/config/config.js';
import { createApp } from '../registry/app.js';
import { deployedAuthorizer } from '../registry/services/auth/deployed-auth.js';
import { withUploadTicketSecret } from '../registry/services/uploads/upload-tickets.js';
import { createAwsClients } from '../registry/storage/aws-clients.js';
import { jsonLogger } from '../registry/support/logger.js';
import { lambdaHandler } from '../registry/transport/lambda-adapter.js';

// Once per cold start: the configuration (and the upload ticket secret, with a gateway), the
// SDK clients and the verification key serve every invocation.
const config = await withUploadTicketSecret(configFromEnv());
const app = createApp(config, createAwsClients(config), jsonLogger());

/** The OCI Distribution API behind API Gateway. */
export const handler = lambdaHandler(app.registry(await deployedAuthorizer(authConfigFromEnv(), config, app.clients)));
