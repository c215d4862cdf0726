import { Arn, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';
import { ACCESS_PARTITION, ROBOT_PARTITION, SOURCE_PREFIX, TRUST_PARTITION, UPSTREAM_PARTITION, USER_PREFIX } from '../../registry/storage/keys.js';

/**
 * The IAM statements of Docker token authentication, in one place like storage-permissions.ts:
 * who may read which half of the token key pair, and what the token endpoint may look up.
 */

/** ARN of an SSM parameter whose name starts with `/`, in the scope's stack's region unless another is given. */
export function parameterArn(scope: IConstruct, parameterName: string, region?: string): string {
  if (!parameterName.startsWith('/')) throw new Error(`parameter name ${parameterName} must start with /`);
  return Arn.format({ service: 'ssm', region, resource: 'parameter', resourceName: parameterName.slice(1) }, Stack.of(scope));
}

/**
 * Any KMS key of the account in that region: the AWS managed key `aws/ssm` has an id that is not
 * known at synth time, and KMS authorizes Decrypt against the key's ARN, never its alias.
 */
export function kmsKeysArn(scope: IConstruct, region?: string): string {
  return Arn.format({ service: 'kms', region, resource: 'key', resourceName: '*' }, Stack.of(scope));
}

/** Reading one parameter (GetParameter only: no listing, no history). */
export function readParameterStatement(sid: string, arn: string): iam.PolicyStatement {
  return new iam.PolicyStatement({ sid, actions: ['ssm:GetParameter'], resources: [arn] });
}

/**
 * KMS use for one SecureString parameter, encrypted with the AWS managed key `aws/ssm`.
 *
 * The key policy of `aws/ssm` already lets every principal of the account use the key through
 * Parameter Store, so `ssm:GetParameter`/`ssm:PutParameter` on the parameter is what really
 * controls access; this statement states the dependency explicitly and cannot be used for
 * anything else:
 * - `kms:ViaService`: only requests Parameter Store makes on the function's behalf in that region,
 *   never a direct KMS call;
 * - `kms:EncryptionContext:PARAMETER_ARN`: Parameter Store puts the parameter's ARN into the
 *   encryption context of every SecureString it encrypts or decrypts, so only this one
 *   parameter's value qualifies, not other SecureStrings under the same key.
 */
export function secureParameterKeyStatement(
  scope: IConstruct,
  sid: string,
  action: 'kms:Decrypt' | 'kms:Encrypt',
  secureParameterArn: string,
  region?: string,
): iam.PolicyStatement {
  const stack = Stack.of(scope);
  return new iam.PolicyStatement({
    sid,
    actions: [action],
    resources: [kmsKeysArn(scope, region)],
    conditions: {
      StringEquals: {
        'kms:ViaService': `ssm.${region ?? stack.region}.${stack.urlSuffix}`,
        'kms:EncryptionContext:PARAMETER_ARN': secureParameterArn,
      },
    },
  });
}

export interface TokenEndpointArns {
  readonly userPoolArn: string;
  readonly tableArn: string;
  readonly signingKeyParameterArn: string;
}

/**
 * The token endpoint (functions/token.ts):
 * - Cognito: InitiateAuth (USER_PASSWORD_AUTH through the public app client) is unauthenticated
 *   and needs no IAM; AdminGetUser and AdminListGroupsForUser find whether a user may still log
 *   in and which groups it is in.
 * - DynamoDB: robots (GetItem), the access policy, the OIDC workload trusts and the pull-through
 *   upstreams (Query; scopes name repositories as the registry resolves them, prefixes and the
 *   Docker mirror entry included), and only their partitions (`dynamodb:LeadingKeys`): the token
 *   endpoint never sees repositories, manifests or uploads.
 *   Login state (docs/logins.md) in the `USER#` and `SOURCE#` partitions: failed-login counters
 *   it counts and clears, and the session generations it reads.
 * - SSM/KMS: the private key, which no other function may read.
 */
export function tokenEndpointStatements(scope: IConstruct, arns: TokenEndpointArns): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'TokenEndpointUserLookup',
      actions: ['cognito-idp:AdminGetUser', 'cognito-idp:AdminListGroupsForUser'],
      resources: [arns.userPoolArn],
    }),
    new iam.PolicyStatement({
      sid: 'TokenEndpointRobotsAndAccessPolicy',
      actions: ['dynamodb:GetItem', 'dynamodb:Query'],
      resources: [arns.tableArn],
      conditions: {
        'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [ROBOT_PARTITION, ACCESS_PARTITION, TRUST_PARTITION, UPSTREAM_PARTITION] },
      },
    }),
    new iam.PolicyStatement({
      sid: 'TokenEndpointLoginState',
      // Query: a user's personal access tokens (their USER# partition), listed to them.
      actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
      resources: [arns.tableArn],
      conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`${USER_PREFIX}*`, `${SOURCE_PREFIX}*`] } },
    }),
    readParameterStatement('TokenSigningKeyRead', arns.signingKeyParameterArn),
    secureParameterKeyStatement(scope, 'TokenSigningKeyDecrypt', 'kms:Decrypt', arns.signingKeyParameterArn),
  ];
}
