import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { describe, expect, it } from 'vitest';
import { RegistryApi } from '../../lib/constructs/registry-api.js';

/** The API construct alone, with stand-in functions. */
describe('RegistryApi', () => {
  const stack = new Stack(new App(), 'ApiTest', { env: { account: '123456789012', region: 'us-east-1' } });
  const standIn = (id: string) =>
    new lambda.Function(stack, id, {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline('export const handler = async () => ({ statusCode: 503 });'),
    });
  const api = new RegistryApi(stack, 'Api', { apiName: 'test', description: 'test', logRetentionDays: 7 });
  api.routeDistributionApi(standIn('Registry'));
  api.routeTokenEndpoint(standIn('Token'));
  const template = Template.fromStack(stack);

  it('routes every Distribution API method and GET and HEAD /health to the registry function, and /token GET and POST and the personal-token paths to the token function', () => {
    const routes = Object.values(template.findResources('AWS::ApiGatewayV2::Route')).map((route) => route.Properties.RouteKey);
    const distribution = ['/v2', '/v2/{proxy+}'].flatMap((path) =>
      ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'].map((method) => `${method} ${path}`),
    );
    const token = ['GET /token', 'POST /token', 'GET /token/personal-tokens', 'POST /token/personal-tokens', 'DELETE /token/personal-tokens/{token}'];
    expect(routes.sort()).toEqual([...distribution, 'GET /health', 'HEAD /health', ...token].sort());
    template.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
      IntegrationUri: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Token'), 'Arn'] },
    });
  });

  it('grants API Gateway one invoke permission per function, not one per route', () => {
    const permissions = Object.values(template.findResources('AWS::Lambda::Permission'));
    expect(permissions).toHaveLength(2);
    for (const permission of permissions) {
      expect(JSON.stringify(permission.Properties.SourceArn)).toContain('/*/*');
    }
  });
});
