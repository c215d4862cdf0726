import { CustomResource, Duration } from 'aws-cdk-lib';
import type * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { FUNCTION_ENTRIES, tokenSigningKeyParameterName, tokenVerificationKeyParameterName, uploadTicketSecretParameterName } from '../naming.js';
import { acknowledgeWildcardResources } from '../nag-acknowledgements.js';
import { kmsKeysArn, parameterArn, secureParameterKeyStatement } from './auth-permissions.js';
import { RegistryFunction } from './registry-function.js';

export interface TokenKeysProps {
  readonly registryName: string;
  /** Changing it writes a new key pair on the next deploy (rotation); every issued token stops working. */
  readonly keyGeneration: number;
  readonly logRetentionDays: number;
  /**
   * Also keep the upload gateway's ticket secret, `/<registryName>/upload-ticket-secret` (a
   * SecureString of 64 random characters): written on Create, kept on Update, replaced with the
   * key pair when `keyGeneration` changes, deleted on Delete and when this is turned off again.
   * @default false
   */
  readonly uploadTicketSecret?: boolean;
  /**
   * The front door (docs/front-door.md): also keep its origin secret (a SecureString like the
   * ticket secret, with the same lifecycle), and write both secrets into its KeyValueStore on
   * every deploy. Needs `uploadTicketSecret`.
   */
  readonly frontDoor?: { readonly originSecretParameterName: string; readonly keyValueStore: cloudfront.IKeyValueStore };
  /**
   * Handler file of the custom resource.
   * @default functions/token-keys-resource.ts
   */
  readonly handlerEntry?: string;
}

/**
 * The key pair registry tokens are signed with (ES256), in two SSM parameters of the primary
 * region: `/<registryName>/token-signing-key` (SecureString, the private key, read only by the
 * token endpoint) and `/<registryName>/token-verification-key` (String, the public key, read by
 * the registry functions of every region).
 *
 * CloudFormation cannot create SecureString parameters, and the key must be generated in AWS
 * rather than at synth time (it would end up in cdk.out and the template), so a Lambda-backed
 * custom resource (functions/token-keys-resource.ts) generates and writes them on Create, keeps
 * them on Update (deploys do not log anybody out), writes a new pair in place when `keyGeneration`
 * changes, and deletes them on Delete. Standard-tier parameters and the AWS managed key `aws/ssm`
 * cost nothing; the handler runs only during deployments.
 *
 * The functions that read the keys cache them per execution environment, so they must be
 * updated after this resource (add a dependency) and carry the key generation in their
 * environment, which makes Lambda start fresh environments after a rotation.
 *
 * Keep this construct's id: a new logical id would create the new resource (writing a new pair)
 * before deleting the old one, whose Delete would then remove the same-named parameters. For the
 * same reason the upload ticket secret (`uploadTicketSecret`) is a property of this resource but
 * not part of its physical id: turning the gateway on or off updates the resource in place.
 */
export class TokenKeys extends Construct {
  readonly signingKeyParameterName: string;
  readonly verificationKeyParameterName: string;
  readonly signingKeyParameterArn: string;
  readonly verificationKeyParameterArn: string;
  /** Set with `uploadTicketSecret` only. */
  readonly uploadTicketSecretParameterName?: string;
  readonly handler: RegistryFunction;
  readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: TokenKeysProps) {
    super(scope, id);
    this.signingKeyParameterName = tokenSigningKeyParameterName(props.registryName);
    this.verificationKeyParameterName = tokenVerificationKeyParameterName(props.registryName);
    this.signingKeyParameterArn = parameterArn(this, this.signingKeyParameterName);
    this.verificationKeyParameterArn = parameterArn(this, this.verificationKeyParameterName);
    const ticketSecretName = uploadTicketSecretParameterName(props.registryName);
    const ticketSecretArn = parameterArn(this, ticketSecretName);
    if (props.uploadTicketSecret) this.uploadTicketSecretParameterName = ticketSecretName;
    if (props.frontDoor && !props.uploadTicketSecret) throw new Error('the front door needs the upload ticket secret');
    const originSecretArn = props.frontDoor && parameterArn(this, props.frontDoor.originSecretParameterName);

    this.handler = new RegistryFunction(this, 'Handler', {
      entry: props.handlerEntry ?? FUNCTION_ENTRIES.tokenKeysResource,
      description: props.uploadTicketSecret
        ? `${props.registryName}: creates and deletes the token key pair and upload ticket secret parameters (CloudFormation custom resource)`
        : `${props.registryName}: creates and deletes the token key pair parameters (CloudFormation custom resource)`,
      // Generating a P-256 key and two SSM calls: the smallest size starts fast enough.
      memorySizeMb: 256,
      timeout: Duration.minutes(1),
      logRetentionDays: props.logRetentionDays,
      environment: {},
    });
    this.handler.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'TokenKeyParametersManage',
        // GetParameter without decryption: the handler only checks that the private key (and
        // the ticket secret) exists.
        actions: ['ssm:PutParameter', 'ssm:GetParameter', 'ssm:DeleteParameter'],
        resources: [this.signingKeyParameterArn, this.verificationKeyParameterArn, ...(props.uploadTicketSecret ? [ticketSecretArn] : [])],
      }),
      secureParameterKeyStatement(this, 'TokenSigningKeyEncrypt', 'kms:Encrypt', this.signingKeyParameterArn),
    );
    if (props.frontDoor && originSecretArn) {
      // Kept secrets are read back (decrypted) to be written to the KeyValueStore again.
      this.handler.addToRolePolicy(
        new iam.PolicyStatement({
          sid: 'OriginSecretManage',
          actions: ['ssm:PutParameter', 'ssm:GetParameter', 'ssm:DeleteParameter'],
          resources: [originSecretArn],
        }),
        secureParameterKeyStatement(this, 'OriginSecretEncrypt', 'kms:Encrypt', originSecretArn),
        secureParameterKeyStatement(this, 'OriginSecretDecrypt', 'kms:Decrypt', originSecretArn),
        secureParameterKeyStatement(this, 'UploadTicketSecretDecrypt', 'kms:Decrypt', ticketSecretArn),
        new iam.PolicyStatement({
          sid: 'FrontDoorKeyValueStoreWrite',
          actions: ['cloudfront-keyvaluestore:DescribeKeyValueStore', 'cloudfront-keyvaluestore:UpdateKeys'],
          resources: [props.frontDoor.keyValueStore.keyValueStoreArn],
        }),
      );
    }
    if (props.uploadTicketSecret) {
      this.handler.addToRolePolicy(secureParameterKeyStatement(this, 'UploadTicketSecretEncrypt', 'kms:Encrypt', ticketSecretArn));
    } else {
      // Turning the gateway off deletes the secret in the resource's Update, which runs after
      // this role's policy has lost the statement above; a stack that never had a gateway only
      // holds a grant on a parameter that does not exist.
      this.handler.addToRolePolicy(
        new iam.PolicyStatement({ sid: 'UploadTicketSecretCleanup', actions: ['ssm:DeleteParameter'], resources: [ticketSecretArn] }),
      );
    }
    acknowledgeWildcardResources(
      this.handler.role,
      [kmsKeysArn(this)],
      props.frontDoor
        ? 'The AWS managed key aws/ssm has no id known at synth time; the statements only let Parameter Store encrypt the token signing key, the upload ticket secret and the origin secret parameters and decrypt the two secrets (kms:ViaService and kms:EncryptionContext:PARAMETER_ARN conditions).'
        : props.uploadTicketSecret
          ? 'The AWS managed key aws/ssm has no id known at synth time; the statements only let Parameter Store encrypt the token signing key parameter and the upload ticket secret parameter (kms:ViaService and kms:EncryptionContext:PARAMETER_ARN conditions).'
          : 'The AWS managed key aws/ssm has no id known at synth time; the statement only lets Parameter Store encrypt the token signing key parameter (kms:ViaService and kms:EncryptionContext:PARAMETER_ARN conditions).',
    );

    this.resource = new CustomResource(this, 'Resource', {
      serviceToken: this.handler.handler.functionArn,
      resourceType: 'Custom::RegistryTokenKeys',
      properties: {
        SigningKeyParameterName: this.signingKeyParameterName,
        VerificationKeyParameterName: this.verificationKeyParameterName,
        KeyGeneration: String(props.keyGeneration),
        RegistryName: props.registryName,
        // Absent without the gateway; never part of the physical id (functions/token-keys-resource.ts).
        ...(this.uploadTicketSecretParameterName ? { UploadTicketSecretParameterName: this.uploadTicketSecretParameterName } : {}),
        ...(props.frontDoor
          ? { OriginSecretParameterName: props.frontDoor.originSecretParameterName, KeyValueStoreArn: props.frontDoor.keyValueStore.keyValueStoreArn }
          : {}),
      },
    });
    // The handler must be able to write before CloudFormation asks it to (and to delete after).
    this.resource.node.addDependency(this.handler.role);
  }
}
