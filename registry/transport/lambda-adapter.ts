import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import type { RegistryHandler, RegistryRequest, RegistryResponse } from '../model/http.js';

/** A registry handler (the OCI API, the token endpoint) as a Lambda behind API Gateway (HTTP API, payload format 2.0). */
export function lambdaHandler(handler: RegistryHandler) {
  return middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>().handler(async (event) =>
    registryToLambdaResponse(await handler(lambdaToRegistryRequest(event)), event.requestContext.http.method),
  );
}

/** API Gateway payload 2.0 to the registry's request: the body arrives whole, often base64. */
export function lambdaToRegistryRequest(event: APIGatewayProxyEventV2): RegistryRequest {
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(event.headers ?? {})) headers[name.toLowerCase()] = value;
  const body = event.body === undefined ? undefined : Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8');
  return {
    requestId: event.requestContext.requestId,
    method: event.requestContext.http.method,
    path: event.rawPath,
    query: new URLSearchParams(event.rawQueryString ?? ''),
    headers,
    sourceIp: event.requestContext.http.sourceIp,
    body: body ? [body] : undefined,
  };
}

/** Bodies go back base64-encoded: manifests are bytes whose digest must not change in transit. */
export function registryToLambdaResponse(response: RegistryResponse, method: string): APIGatewayProxyStructuredResultV2 {
  const result: APIGatewayProxyStructuredResultV2 = { statusCode: response.status, headers: response.headers };
  if (response.body !== undefined && method !== 'HEAD') {
    result.body = Buffer.from(response.body).toString('base64');
    result.isBase64Encoded = true;
  }
  return result;
}
