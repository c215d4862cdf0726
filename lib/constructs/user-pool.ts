import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import { Construct } from 'constructs';
import { DEFAULT_ADMIN_GROUP } from '../../registry/model/auth/access-model.js';
import { acknowledgeNag } from '../nag-acknowledgements.js';

export interface RegistryUserPoolProps {
  readonly userPoolName: string;
}

/**
 * Members may do everything in the registry; the functions get the same name as ADMIN_GROUP.
 * Finer permissions are grants to other groups (the access policy, managed with the admin CLI).
 */
export const ADMIN_GROUP_NAME = DEFAULT_ADMIN_GROUP;

/**
 * The registry's users. `docker login` sends a username and password to the token endpoint,
 * which checks them with Cognito's USER_PASSWORD_AUTH flow through a public app client (no
 * secret: the token function is the only caller and holds no secret of its own).
 *
 * Accounts are created by administrators (`scripts/`), never by self sign-up.
 */
export class RegistryUserPool extends Construct {
  readonly userPool: cognito.UserPool;
  readonly tokenEndpointClient: cognito.UserPoolClient;
  readonly adminGroup: cognito.UserPoolGroup;

  constructor(scope: Construct, id: string, props: RegistryUserPoolProps) {
    super(scope, id);

    this.userPool = new cognito.UserPool(this, 'UserPool', {
      userPoolName: props.userPoolName,
      selfSignUpEnabled: false,
      signInAliases: { username: true },
      signInCaseSensitive: false,
      passwordPolicy: {
        minLength: 12,
        requireLowercase: true,
        requireUppercase: true,
        requireDigits: true,
        requireSymbols: true,
        tempPasswordValidity: Duration.days(3),
      },
      // Administrators reset passwords (AdminSetUserPassword); users have no e-mail or phone on file.
      accountRecovery: cognito.AccountRecovery.NONE,
      mfa: cognito.Mfa.OFF,
      // Username/password sign-in is all the registry needs; Lite is the cheapest plan.
      featurePlan: cognito.FeaturePlan.LITE,
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.tokenEndpointClient = this.userPool.addClient('TokenEndpointClient', {
      userPoolClientName: 'token-endpoint',
      authFlows: { userPassword: true },
      generateSecret: false,
      // No hosted UI or OAuth redirects: the token endpoint calls InitiateAuth directly.
      disableOAuth: true,
      preventUserExistenceErrors: true,
      enableTokenRevocation: true,
      accessTokenValidity: Duration.hours(1),
      idTokenValidity: Duration.hours(1),
      // Docker stores the refresh token as its identity token, so it should outlive a work week.
      refreshTokenValidity: Duration.days(30),
    });

    this.adminGroup = this.userPool.addGroup('AdminGroup', {
      groupName: ADMIN_GROUP_NAME,
      description: 'Registry administrators: may do everything. Other groups get what the access policy grants them (npm run admin -- grant).',
    });

    acknowledgeNag(
      this.userPool,
      'AwsSolutions-COG2',
      'Docker, podman, skopeo and containerd log in with a username and password (HTTP Basic to the token endpoint) and cannot answer an MFA challenge; most users are CI robots.',
    );
    acknowledgeNag(
      this.userPool,
      'AwsSolutions-COG8',
      'The Plus plan adds threat protection for interactive sign-ins at a per-user price; registry sign-ins are machine logins through one token endpoint, with a strong password policy and no self sign-up.',
    );
  }
}
