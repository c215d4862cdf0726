import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { authConfigFromEnv, configFromEnv } from './commons/config.js';
import { createAwsClients } from './commons/storage/aws-clients.js';
import { jsonLogger } from './commons/logger.js';
import { deployedTokenService } from './commons/auth/deployed-auth.js';
import { createTokenEndpoint } from './commons/auth/token-endpoint.js';
import { lambdaToRegistryRequest, registryToLambdaResponse } from './commons/http/lambda-adapter.js';

const config = configFromEnv();
const endpoint = createTokenEndpoint(await deployedTokenService(config, authConfigFromEnv(), createAwsClients(config)), jsonLogger());

/** The Docker token endpoint (`GET|POST /token`) behind API Gateway. */
export const handler = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>().handler(async (event) =>
  registryToLambdaResponse(await endpoint(lambdaToRegistryRequest(event)), event.requestContext.http.method),
);
