/**
 * What the token endpoint answers for each way Cognito can fail a password login: a refusal of
 * the credentials is a 401 like a wrong password, Cognito throttling a 429 and Cognito being
 * down a 503, never a 500 and never "wrong password" for an outage.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  CodeMismatchException,
  CognitoIdentityProviderClient,
  CognitoIdentityProviderServiceException,
  InitiateAuthCommand,
  InternalErrorException,
  InvalidParameterException,
  InvalidPasswordException,
  LimitExceededException,
  NotAuthorizedException,
  PasswordResetRequiredException,
  TooManyRequestsException,
  UserNotConfirmedException,
  UserNotFoundException,
} from '@aws-sdk/client-cognito-identity-provider';
import { CognitoIdentities } from '../../../../registry/services/auth/cognito-identities.js';
import { tokenServiceFor } from '../../../../registry/services/auth/deployed-auth.js';
import { generateSigningKeyPem, signingKeyFromPem } from '../../../../registry/services/auth/signing-keys.js';
import { createTokenEndpoint } from '../../../../registry/api/token-endpoint.js';
import { jsonLogger, silentLogger } from '../../../../registry/support/logger.js';
import type { AuthConfig } from '../../../../registry/config/config.js';
import type { AwsClients } from '../../../../registry/storage/aws-clients.js';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, BatchGetCommand, QueryCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';

const AUTH: AuthConfig = {
  mode: 'token',
  publicBaseUrl: 'https://r.example',
  accessTokenSeconds: 300,
  refreshTokenSeconds: 3600,
  adminGroup: 'registry-admins',
};

const cognitoMock = mockClient(CognitoIdentityProviderClient);
const dynamoMock = mockClient(DynamoDBDocumentClient);
const logLines: string[] = [];

function endpoint() {
  const users = new CognitoIdentities(new CognitoIdentityProviderClient({ region: 'us-east-1' }), 'us-east-1_pool', 'client', {
    verify: async () => ({ username: 'alice', 'cognito:groups': [] }),
  });
  const dynamo = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));
  return createTokenEndpoint(
    tokenServiceFor(signingKeyFromPem(generateSigningKeyPem()), AUTH, users, { dynamo } as unknown as AwsClients, 't', silentLogger),
    jsonLogger((line) => logLines.push(line)),
  );
}

async function loginStatus(): Promise<{ status: number; headers: Record<string, string> }> {
  const response = await endpoint()({
    method: 'GET',
    path: '/token',
    query: new URLSearchParams('service=r.example'),
    headers: { authorization: `Basic ${Buffer.from('alice:s3cret-password').toString('base64')}` },
    sourceIp: '192.0.2.1',
  });
  return { status: response.status, headers: response.headers };
}

afterEach(() => {
  cognitoMock.reset();
  dynamoMock.reset();
  logLines.length = 0;
});

function givenEmptyTable(): void {
  dynamoMock.on(QueryCommand).resolves({ Items: [] });
  dynamoMock.on(BatchGetCommand).resolves({ Responses: { t: [] } });
  dynamoMock.on(UpdateCommand).resolves({});
  dynamoMock.on(PutCommand).resolves({});
}

describe('a password login Cognito does not accept', () => {
  const refusals = [
    new NotAuthorizedException({ message: 'Incorrect username or password.', $metadata: { httpStatusCode: 400 } }),
    new UserNotFoundException({ message: 'User does not exist.', $metadata: { httpStatusCode: 400 } }),
    new InvalidParameterException({ message: "Value at 'username' failed to satisfy constraint", $metadata: { httpStatusCode: 400 } }),
    new UserNotConfirmedException({ message: 'User is not confirmed.', $metadata: { httpStatusCode: 400 } }),
    new PasswordResetRequiredException({ message: 'Password reset required.', $metadata: { httpStatusCode: 400 } }),
    new InvalidPasswordException({ message: 'Password does not conform to policy', $metadata: { httpStatusCode: 400 } }),
    new CodeMismatchException({ message: 'Invalid code', $metadata: { httpStatusCode: 400 } }),
    // A client error this code has never heard of is a refusal too.
    new CognitoIdentityProviderServiceException({
      name: 'SomeNewRefusalException',
      $fault: 'client',
      message: 'no',
      $metadata: { httpStatusCode: 400 },
    }),
  ];

  for (const refusal of refusals) {
    it(`answers ${refusal.name} with 401, like a wrong password`, async () => {
      givenEmptyTable();
      cognitoMock.on(InitiateAuthCommand).rejects(refusal);
      expect((await loginStatus()).status).toBe(401);
    });
  }

  it('answers Cognito throttling with 429 and Retry-After, not 401', async () => {
    for (const throttled of [
      new TooManyRequestsException({ message: 'Rate exceeded', $metadata: { httpStatusCode: 400 } }),
      new LimitExceededException({ message: 'Limit exceeded', $metadata: { httpStatusCode: 400 } }),
    ]) {
      givenEmptyTable();
      cognitoMock.on(InitiateAuthCommand).rejects(throttled);
      const answer = await loginStatus();
      expect(answer.status).toBe(429);
      expect(answer.headers['Retry-After']).toBeTruthy();
    }
  });

  it('answers Cognito being down with 503, logged without the password', async () => {
    givenEmptyTable();
    cognitoMock.on(InitiateAuthCommand).rejects(new InternalErrorException({ message: 'internal', $metadata: { httpStatusCode: 500 } }));
    expect((await loginStatus()).status).toBe(503);
    cognitoMock.on(InitiateAuthCommand).rejects(Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }));
    expect((await loginStatus()).status).toBe(503);
    expect(logLines.join('\n')).toContain('InternalErrorException');
    expect(logLines.join('\n')).not.toContain('s3cret-password');
  });
});
