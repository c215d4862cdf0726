import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { authConfigFromEnv, configFromEnv } from './commons/config.js';
import { createAwsClients } from './commons/storage/aws-clients.js';
import { createServices } from './commons/services.js';
import { createRegistry } from './commons/registry.js';
import { jsonLogger } from './commons/logger.js';
import { deployedAuthorizer } from './commons/auth/deployed-auth.js';
import { withUploadTicketSecret } from './commons/uploads/upload-tickets.js';
import { lambdaToRegistryRequest, registryToLambdaResponse } from './commons/http/lambda-adapter.js';

// The upload ticket secret (when an upload gateway is configured) is read once per cold start.
const config = await withUploadTicketSecret(configFromEnv());
const auth = authConfigFromEnv();
const logger = jsonLogger();
// Read once per cold start: the verification key and the SDK clients serve every invocation.
const registry = createRegistry(createServices(config, createAwsClients(config)), logger, await deployedAuthorizer(auth, config.region));

/** The OCI Distribution API behind API Gateway (HTTP API, payload format 2.0). */
export const handler = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>().handler(async (event) =>
  registryToLambdaResponse(await registry(lambdaToRegistryRequest(event)), event.requestContext.http.method),
);
