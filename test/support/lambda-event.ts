import type { APIGatewayProxyEventV2 } from 'aws-lambda';

/** An API Gateway HTTP API event (payload 2.0), as the registry function receives it. */
export function lambdaEvent(
  method: string,
  rawPath: string,
  options: { rawQueryString?: string; headers?: Record<string, string>; body?: string; isBase64Encoded?: boolean; userAgent?: string } = {},
): APIGatewayProxyEventV2 {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString: options.rawQueryString ?? '',
    headers: options.headers ?? {},
    requestContext: {
      accountId: '123456789012',
      apiId: 'api',
      domainName: 'registry.example.com',
      domainPrefix: 'registry',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '192.0.2.1', userAgent: options.userAgent ?? 'test' },
      requestId: 'req-1',
      routeKey: '$default',
      stage: '$default',
      time: '01/Jan/2024:00:00:00 +0000',
      timeEpoch: 1_704_067_200_000,
    },
    isBase64Encoded: options.isBase64Encoded ?? false,
    ...(options.body === undefined ? {} : { body: options.body }),
  };
}
