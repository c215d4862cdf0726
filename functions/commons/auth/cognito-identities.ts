import {
  AdminGetUserCommand,
  AdminListGroupsForUserCommand,
  InitiateAuthCommand,
  type CognitoIdentityProviderClient,
} from '@aws-sdk/client-cognito-identity-provider';

export interface UserIdentity {
  username: string;
  groups: string[];
}

/** Verifies a Cognito access token and answers its claims; throws when it is not valid. */
export interface CognitoTokenVerifier {
  verify(token: string): Promise<{ [claim: string]: unknown }>;
}

/** Answers that mean "these credentials do not log in", as opposed to a fault. */
const LOGIN_REFUSED = new Set([
  'NotAuthorizedException',
  'UserNotFoundException',
  'UserNotConfirmedException',
  'PasswordResetRequiredException',
  // cognito-local's answer to a wrong password.
  'InvalidPasswordException',
]);

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
    try {
      const result = await this.cognito.send(
        new InitiateAuthCommand({
          AuthFlow: 'USER_PASSWORD_AUTH',
          ClientId: this.clientId,
          AuthParameters: { USERNAME: username, PASSWORD: password },
        }),
      );
      const accessToken = result.AuthenticationResult?.AccessToken;
      if (!accessToken) return undefined;
      const claims = await this.verifier.verify(accessToken);
      const groups = Array.isArray(claims['cognito:groups']) ? (claims['cognito:groups'] as string[]) : [];
      return { username: String(claims.username ?? username), groups };
    } catch (error) {
      if (LOGIN_REFUSED.has((error as { name?: string }).name ?? '')) return undefined;
      throw error;
    }
  }

  /** The user as the pool has it now: undefined when deleted or disabled. */
  async current(username: string): Promise<UserIdentity | undefined> {
    try {
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
    } catch (error) {
      if ((error as { name?: string }).name === 'UserNotFoundException') return undefined;
      throw error;
    }
  }
}
