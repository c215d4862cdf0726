import {
  AdminGetUserCommand,
  AdminListGroupsForUserCommand,
  InitiateAuthCommand,
  type CognitoIdentityProviderClient,
} from '@aws-sdk/client-cognito-identity-provider';
import { RegistryError } from '../../model/oci/errors.js';

export interface UserIdentity {
  username: string;
  groups: string[];
}

/** Verifies a Cognito access token and answers its claims; throws when it is not valid. */
export interface CognitoTokenVerifier {
  verify(token: string): Promise<{ [claim: string]: unknown }>;
}

/** Cognito asks us to slow down: the caller should retry (429), not hear "wrong password". */
const THROTTLED = new Set(['TooManyRequestsException', 'LimitExceededException', 'ThrottlingException']);

/** Client errors that are the registry's own setup failing (pool, app client, triggers, IAM),
 * not a refusal of the caller's credentials: every login would fail alike. */
const MISCONFIGURED = new Set([
  'ResourceNotFoundException',
  'InvalidUserPoolConfigurationException',
  'UnexpectedLambdaException',
  'InvalidLambdaResponseException',
  'AccessDeniedException',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'ExpiredTokenException',
]);

interface AwsErrorShape {
  name?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number };
}

/**
 * Whether a Cognito error refuses these credentials: any client error (NotAuthorized,
 * UserNotFound, InvalidParameter for a name or password the pool cannot hold,
 * UserNotConfirmed, PasswordResetRequired, cognito-local's InvalidPassword, ...) except
 * throttling and the registry's own misconfiguration.
 */
export function isCredentialRefusal(error: unknown): boolean {
  const { name = '', $fault, $metadata } = (error ?? {}) as AwsErrorShape;
  if (THROTTLED.has(name) || MISCONFIGURED.has(name)) return false;
  const status = $metadata?.httpStatusCode;
  return $fault === 'client' && (status === undefined || (status >= 400 && status < 500));
}

/** Any other failure to ask the pool: 429 when Cognito throttles, 503 otherwise. No secret is in it. */
export function userPoolUnavailable(error: unknown): RegistryError {
  const name = (error as AwsErrorShape | undefined)?.name ?? 'Error';
  if (THROTTLED.has(name)) {
    return new RegistryError('TOOMANYREQUESTS', 'the user pool is busy: try again shortly', { retryAfterSeconds: 1 });
  }
  return new RegistryError('UNAVAILABLE', `the user pool cannot be reached (${name})`, { retryAfterSeconds: 5 });
}

/** Team logins, checked against the Cognito user pool. */
export class CognitoIdentities {
  constructor(
    private readonly cognito: CognitoIdentityProviderClient,
    private readonly userPoolId: string,
    private readonly clientId: string,
    private readonly verifier: CognitoTokenVerifier,
  ) {}

  /** Answers undefined when the pool refuses the password (or asks for a new one first). */
  async authenticate(username: string, password: string): Promise<UserIdentity | undefined> {
    const accessToken = await this.ask(async () => {
      const result = await this.cognito.send(
        new InitiateAuthCommand({
          AuthFlow: 'USER_PASSWORD_AUTH',
          ClientId: this.clientId,
          AuthParameters: { USERNAME: username, PASSWORD: password },
        }),
      );
      return result.AuthenticationResult?.AccessToken;
    });
    if (!accessToken) return undefined;
    const claims = await this.verifier.verify(accessToken);
    const groups = Array.isArray(claims['cognito:groups']) ? (claims['cognito:groups'] as string[]) : [];
    return { username: String(claims.username ?? username), groups };
  }

  /** The user as the pool has it now: undefined when deleted or disabled. */
  async current(username: string): Promise<UserIdentity | undefined> {
    return this.ask(async () => {
      const user = await this.cognito.send(new AdminGetUserCommand({ UserPoolId: this.userPoolId, Username: username }));
      if (user.Enabled === false) return undefined;
      const groups: string[] = [];
      let nextToken: string | undefined;
      do {
        const page = await this.cognito.send(
          new AdminListGroupsForUserCommand({ UserPoolId: this.userPoolId, Username: username, NextToken: nextToken }),
        );
        groups.push(...(page.Groups ?? []).map((group) => group.GroupName!).filter(Boolean));
        nextToken = page.NextToken;
      } while (nextToken);
      return { username, groups };
    });
  }

  /** A call to the pool: undefined when it refuses the caller, a 429 or 503 when it cannot answer. */
  private async ask<T>(call: () => Promise<T | undefined>): Promise<T | undefined> {
    try {
      return await call();
    } catch (error) {
      if (isCredentialRefusal(error)) return undefined;
      throw userPoolUnavailable(error);
    }
  }
}
