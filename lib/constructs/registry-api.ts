import { RemovalPolicy } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { acknowledgeNag } from '../nag-acknowledgements.js';
import type { ApiThrottleOptions } from '../registry-options.js';

export interface RegistryApiProps {
  readonly apiName: string;
  readonly description: string;
  readonly logRetentionDays: number;
  readonly throttle?: ApiThrottleOptions;
}

/** Where routes are created: the API's own construct, or a construct of another stack (a replica's function stack). */
type RouteScope = Construct;

/** OCI Distribution routes: `/v2` also matches `/v2/` (HTTP APIs ignore a trailing slash). */
const DISTRIBUTION_PATHS = ['/v2', '/v2/{proxy+}'];
/** The unauthenticated health check for load balancers and monitors, served by the registry function. */
const HEALTH_PATH = '/health';
const HEALTH_METHODS = [apigwv2.HttpMethod.GET, apigwv2.HttpMethod.HEAD];
/**
 * Every method of the Distribution API, in every region: a read-only replica's function answers
 * writes itself (405 UNSUPPORTED naming the primary), which tells a client more than API
 * Gateway's bare 404 for an unrouted method.
 */
const DISTRIBUTION_METHODS = [
  apigwv2.HttpMethod.GET,
  apigwv2.HttpMethod.HEAD,
  apigwv2.HttpMethod.POST,
  apigwv2.HttpMethod.PUT,
  apigwv2.HttpMethod.PATCH,
  apigwv2.HttpMethod.DELETE,
];
/** Docker token authentication: GET with Basic credentials, POST for the OAuth2 form. */
const TOKEN_PATH = '/token';
const TOKEN_METHODS = [apigwv2.HttpMethod.GET, apigwv2.HttpMethod.POST];
/** Users' own personal access tokens (docs/logins.md): list and create, and revoke one. */
const PERSONAL_TOKEN_ROUTES = [
  { path: '/token/personal-tokens', methods: [apigwv2.HttpMethod.GET, apigwv2.HttpMethod.POST] },
  { path: '/token/personal-tokens/{token}', methods: [apigwv2.HttpMethod.DELETE] },
];

/**
 * One JSON object per request in the access log. CloudWatch Logs Insights discovers the fields.
 * @see https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-logging-variables.html
 */
const ACCESS_LOG_FORMAT = AccessLogFormat.custom(
  JSON.stringify({
    requestId: '$context.requestId',
    requestTime: '$context.requestTime',
    sourceIp: '$context.identity.sourceIp',
    userAgent: '$context.identity.userAgent',
    domainName: '$context.domainName',
    httpMethod: '$context.httpMethod',
    path: '$context.path',
    routeKey: '$context.routeKey',
    protocol: '$context.protocol',
    status: '$context.status',
    responseLength: '$context.responseLength',
    responseLatency: '$context.responseLatency',
    integrationStatus: '$context.integration.status',
    integrationLatency: '$context.integration.latency',
    integrationError: '$context.integrationErrorMessage',
    lambdaRequestId: '$context.integration.requestId',
  }),
);

/**
 * The registry's HTTP API: routes and the `$default` stage with access logging and throttling. It
 * is the front door's origin; clients reach it through CloudFront only (docs/front-door.md).
 *
 * Authorization is not done by API Gateway: the Docker token flow needs a `WWW-Authenticate`
 * challenge that a JWT authorizer cannot produce, so the functions authorize each request.
 */
export class RegistryApi extends Construct {
  readonly httpApi: apigwv2.HttpApi;
  readonly stage: apigwv2.HttpStage;
  readonly accessLogGroup: logs.LogGroup;
  /** The execute-api endpoint: the front door's origin, not a URL to give clients (they use the front door's). */
  readonly url: string;

  constructor(scope: Construct, id: string, props: RegistryApiProps) {
    super(scope, id);

    this.httpApi = new apigwv2.HttpApi(this, 'HttpApi', {
      apiName: props.apiName,
      description: props.description,
      // Our own `$default` stage below carries the access log settings.
      createDefaultStage: false,
      // The front door's origin (lib/constructs/front-door.ts): the functions refuse requests
      // without its origin secret, so this endpoint is no second way in.
      disableExecuteApiEndpoint: false,
      ipAddressType: apigwv2.IpAddressType.DUAL_STACK,
    });

    this.accessLogGroup = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.logRetentionDays as logs.RetentionDays,
      // The access log is the audit record of who pushed and pulled what; it outlives the stack.
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.stage = new apigwv2.HttpStage(this, 'DefaultStage', {
      httpApi: this.httpApi,
      stageName: '$default',
      autoDeploy: true,
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(this.accessLogGroup),
        format: ACCESS_LOG_FORMAT,
      },
      throttle: props.throttle,
    });

    this.url = this.httpApi.apiEndpoint;
  }

  /**
   * Routes the OCI Distribution API (`/v2/...`, all its methods) to the registry function. In a
   * replica region the function refuses writes with a 405 that names the primary (and its role
   * cannot write in any case).
   */
  routeDistributionApi(handler: lambda.IFunction, scope: RouteScope = this): void {
    this.addLambdaRoutes(scope, 'RegistryIntegration', handler, [
      ...DISTRIBUTION_PATHS.map((path) => ({ path, methods: DISTRIBUTION_METHODS })),
      { path: HEALTH_PATH, methods: HEALTH_METHODS },
    ]);
  }

  /** Routes `/token` (GET and POST) and the personal-token paths to the Docker token endpoint function (primary region only). */
  routeTokenEndpoint(handler: lambda.IFunction): void {
    this.addLambdaRoutes(this, 'TokenIntegration', handler, [{ path: TOKEN_PATH, methods: TOKEN_METHODS }, ...PERSONAL_TOKEN_ROUTES]);
  }

  private addLambdaRoutes(
    scope: RouteScope,
    integrationId: string,
    handler: lambda.IFunction,
    routing: { path: string; methods: apigwv2.HttpMethod[] }[],
  ): void {
    // One Lambda permission for the whole API rather than one per route (a function's resource
    // policy is limited to 20 KB).
    const integration = new HttpLambdaIntegration(integrationId, handler, { scopePermissionToRoute: false });
    for (const { path, methods } of routing) {
      const routes = methods.map(
        (method) =>
          new apigwv2.HttpRoute(scope === this ? this.httpApi : scope, `${scope === this ? '' : 'Route'}${method}${path}`, {
            httpApi: this.httpApi,
            routeKey: apigwv2.HttpRouteKey.with(path, method),
            integration,
          }),
      );
      for (const route of routes) {
        acknowledgeNag(
          route,
          'AwsSolutions-APIG4',
          'Authorization is enforced by the registry functions: Docker token auth requires a WWW-Authenticate Bearer challenge on 401, which API Gateway authorizers cannot send.',
        );
      }
    }
  }
}
