import { randomBytes } from 'node:crypto';
import { DeleteParameterCommand, GetParameterCommand, PutParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { generateSigningKeyPem, publicKeyPem, signingKeyFromPem, verificationKeyFromPem } from './signing-keys.js';

/**
 * The CloudFormation custom resource behind the registry's token key pair (ES256), kept in two
 * SSM parameters in the primary region: the private key as a SecureString (read by the token
 * endpoint only) and the public key as a String (read by every registry function).
 *
 * - Create: generates a key pair and writes both parameters (overwriting leftovers).
 * - Update: keeps the pair, so a deploy never invalidates issued tokens. A new `KeyGeneration`
 *   writes a new pair in place (rotation); a parameter found missing is written again (with a
 *   new pair: a lone public key is useless without its private key). New parameter names get a
 *   new pair and a new physical id, so CloudFormation deletes the old names afterwards.
 * - Delete: deletes both parameters.
 *
 * With the upload gateway (docs/upload-gateway.md) the same resource also keeps the upload ticket
 * secret, a third parameter (SecureString) named by the optional `UploadTicketSecretParameterName`:
 * written with the key pair on Create, kept on Update (written again if missing), replaced with
 * the key pair when `KeyGeneration` changes, written when the property appears (the gateway is
 * turned on), deleted when it disappears (turned off), and deleted on Delete. It is not part of
 * the physical id: turning the gateway on or off must not change the physical id, because
 * CloudFormation would then send a Delete for the old id after the update, and that Delete would
 * remove the key pair parameters the update just kept (the same hazard as a new logical id, see
 * lib/constructs/token-keys.ts). Delete finds the secret in the resource's properties instead.
 *
 * The Lambda entry (functions/token-keys-resource.ts) answers CloudFormation
 * (registry/transport/custom-resource.ts).
 */

/** The custom resource's properties, as the CDK construct (lib/constructs/token-keys.ts) sets them. */
export interface TokenKeysProperties {
  SigningKeyParameterName: string;
  VerificationKeyParameterName: string;
  /** Any change (by convention 1, 2, 3, ...) replaces the key pair. */
  KeyGeneration: string;
  /** Named in the parameters' descriptions. */
  RegistryName: string;
  /** Set with the upload gateway or the front door: the SecureString parameter of the upload ticket secret. */
  UploadTicketSecretParameterName?: string;
  /** Set with the front door (docs/front-door.md): the SecureString parameter of the origin secret. */
  OriginSecretParameterName?: string;
  /**
   * Set with the front door: the CloudFront KeyValueStore its function reads, which gets both
   * secrets (keys `ticket-secrets` and `origin-secret`) after every Create and Update.
   */
  KeyValueStoreArn?: string;
}

/** The generated secrets the resource keeps besides the key pair, by the property naming each one's parameter. */
const SECRETS = {
  UploadTicketSecretParameterName: 'Secret the registry signs upload tickets with and the front door and upload gateway check them with.',
  OriginSecretParameterName: 'Secret the front door (CloudFront) sends to the registry origins, which refuse requests without it.',
} as const;
type SecretProperty = keyof typeof SECRETS;
const SECRET_PROPERTIES = Object.keys(SECRETS) as SecretProperty[];

/** The KeyValueStore keys the front door function reads (functions/edge/front-door.js). */
export const KEY_VALUE_STORE_KEYS = { UploadTicketSecretParameterName: 'ticket-secrets', OriginSecretParameterName: 'origin-secret' } as const;

/** Writes keys of a CloudFront KeyValueStore (registry/services/auth/key-value-store.ts in AWS). */
export type KeyValueStoreWriter = (arn: string, values: Record<string, string>) => Promise<void>;

export interface TokenKeysResult {
  physicalResourceId: string;
  data: Record<string, string> & {
    SigningKeyParameterName: string;
    VerificationKeyParameterName: string;
    /** The key id (RFC 7638 thumbprint) tokens carry in their header; empty after a Delete. */
    KeyId: string;
    /** The ticket secret's parameter name (never its value); empty without the upload gateway and the front door. */
    UploadTicketSecretParameterName: string;
    /** The origin secret's parameter name (never its value); empty without the front door. */
    OriginSecretParameterName: string;
  };
}

type SsmSender = Pick<SSMClient, 'send'>;

/**
 * The physical id names both parameters, so that a Delete (after a change of names, or of the
 * stack) knows which ones to remove even without properties. `,` never occurs in a parameter name.
 */
export function physicalResourceIdOf(properties: Pick<TokenKeysProperties, 'SigningKeyParameterName' | 'VerificationKeyParameterName'>): string {
  return `${properties.SigningKeyParameterName},${properties.VerificationKeyParameterName}`;
}

function parameterNamesOf(physicalResourceId: string): [string, string] | undefined {
  const names = physicalResourceId.split(',');
  return names.length === 2 && names.every((name) => name.startsWith('/')) ? [names[0], names[1]] : undefined;
}

function propertiesOf(raw: Record<string, unknown>): TokenKeysProperties {
  const text = (key: keyof TokenKeysProperties): string => {
    const value = raw[key];
    if (typeof value !== 'string' || value === '') throw new Error(`property ${key} is missing`);
    return value;
  };
  const properties: TokenKeysProperties = {
    SigningKeyParameterName: text('SigningKeyParameterName'),
    VerificationKeyParameterName: text('VerificationKeyParameterName'),
    KeyGeneration: text('KeyGeneration'),
    RegistryName: text('RegistryName'),
  };
  const withSecrets: TokenKeysProperties = { ...properties };
  for (const property of SECRET_PROPERTIES) {
    const name = secretNameOf(raw, property);
    if (raw[property] !== undefined && name === undefined) throw new Error(`property ${property} must be a parameter name starting with /`);
    if (name !== undefined) withSecrets[property] = name;
  }
  if (raw.KeyValueStoreArn !== undefined) {
    if (typeof raw.KeyValueStoreArn !== 'string' || !raw.KeyValueStoreArn.startsWith('arn:'))
      throw new Error('property KeyValueStoreArn must be an ARN');
    if (!withSecrets.UploadTicketSecretParameterName || !withSecrets.OriginSecretParameterName) {
      throw new Error('property KeyValueStoreArn needs UploadTicketSecretParameterName and OriginSecretParameterName');
    }
    withSecrets.KeyValueStoreArn = raw.KeyValueStoreArn;
  }
  return withSecrets;
}

/** A secret's parameter name in a set of (new or old) properties, if it names one. */
function secretNameOf(raw: Record<string, unknown> | undefined, property: SecretProperty): string | undefined {
  const value = raw?.[property];
  return typeof value === 'string' && value.startsWith('/') && !value.includes(',') ? value : undefined;
}

/**
 * A fresh upload ticket secret: 48 random bytes as base64url, 64 characters (the gateway and the
 * registry function want at least 32), without the commas and white space that separate several
 * secrets in one value (registry/services/uploads/upload-tickets.ts).
 */
export function generateUploadTicketSecret(): string {
  return randomBytes(48).toString('base64url');
}

/**
 * Creates, keeps, rotates or deletes the key pair (and the secrets) as the event asks; the
 * CloudFormation answer is the caller's. With a KeyValueStore, every Create and Update writes the
 * secrets there too (the store may be new, or the secrets were rotated).
 */
export async function manageTokenKeys(
  event: CloudFormationCustomResourceEvent,
  ssm: SsmSender,
  writeKeyValueStore?: KeyValueStoreWriter,
): Promise<TokenKeysResult> {
  if (event.RequestType === 'Delete') {
    const names = parameterNamesOf(event.PhysicalResourceId);
    if (names) {
      for (const name of names) await deleteParameter(ssm, name);
    }
    // Not in the physical id (see above): the properties of the resource being deleted name them.
    const secrets = SECRET_PROPERTIES.map((property) => secretNameOf(event.ResourceProperties, property));
    for (const secret of secrets) if (secret) await deleteParameter(ssm, secret);
    const [signing, verification] = names ?? ['', ''];
    return {
      physicalResourceId: event.PhysicalResourceId,
      data: {
        SigningKeyParameterName: signing,
        VerificationKeyParameterName: verification,
        KeyId: '',
        UploadTicketSecretParameterName: secrets[0] ?? '',
        OriginSecretParameterName: secrets[1] ?? '',
      },
    };
  }

  const properties = propertiesOf(event.ResourceProperties);
  let keyId: string | undefined;
  let rotate = true;
  if (event.RequestType === 'Update') {
    const previous = event.OldResourceProperties as Partial<TokenKeysProperties>;
    rotate = previous.KeyGeneration !== properties.KeyGeneration;
    if (!rotate) keyId = await existingKeyId(ssm, properties);
  }
  keyId ??= await writeNewKeyPair(ssm, properties);
  const values: Partial<Record<SecretProperty, string>> = {};
  for (const property of SECRET_PROPERTIES) {
    const name = properties[property];
    const previousName = event.RequestType === 'Update' ? secretNameOf(event.OldResourceProperties, property) : undefined;
    const kept =
      !rotate && name !== undefined && name === previousName ? await getParameter(ssm, name, properties.KeyValueStoreArn !== undefined) : undefined;
    if (name) values[property] = kept ?? (await writeNewSecret(ssm, name, property, properties.RegistryName));
    // The feature was turned off (or the name changed): nothing reads the old secret any more. The
    // physical id stays the same, so no Delete will come for it.
    if (previousName && previousName !== name) await deleteParameter(ssm, previousName);
  }
  if (properties.KeyValueStoreArn) {
    if (!writeKeyValueStore) throw new Error('no KeyValueStore client to write the front door secrets with');
    await writeKeyValueStore(
      properties.KeyValueStoreArn,
      Object.fromEntries(SECRET_PROPERTIES.map((property) => [KEY_VALUE_STORE_KEYS[property], values[property]!])),
    );
  }
  return {
    physicalResourceId: physicalResourceIdOf(properties),
    data: {
      SigningKeyParameterName: properties.SigningKeyParameterName,
      VerificationKeyParameterName: properties.VerificationKeyParameterName,
      KeyId: keyId,
      UploadTicketSecretParameterName: properties.UploadTicketSecretParameterName ?? '',
      OriginSecretParameterName: properties.OriginSecretParameterName ?? '',
    },
  };
}

/** Writes a fresh secret and answers it (for the KeyValueStore; never logged or returned to CloudFormation). */
async function writeNewSecret(ssm: SsmSender, name: string, property: SecretProperty, registryName: string): Promise<string> {
  const value = generateUploadTicketSecret();
  await ssm.send(
    new PutParameterCommand({
      Name: name,
      Value: value,
      // The AWS managed key aws/ssm, as the signing key.
      Type: 'SecureString',
      Tier: 'Standard',
      Overwrite: true,
      Description: `${registryName}: ${SECRETS[property]} Managed by CloudFormation.`,
    }),
  );
  return value;
}

/** The key id of the pair in place, or undefined when either parameter is missing. */
async function existingKeyId(ssm: SsmSender, properties: TokenKeysProperties): Promise<string | undefined> {
  // The private key's parameter is only checked for existence: no decryption needed.
  const signing = await getParameter(ssm, properties.SigningKeyParameterName, false);
  const verification = await getParameter(ssm, properties.VerificationKeyParameterName, false);
  if (signing === undefined || verification === undefined) return undefined;
  return verificationKeyFromPem(verification).kid;
}

async function writeNewKeyPair(ssm: SsmSender, properties: TokenKeysProperties): Promise<string> {
  const privatePem = generateSigningKeyPem();
  const signingKey = signingKeyFromPem(privatePem);
  // The public key first: a function starting in between then fails to verify the tokens of a
  // token endpoint that still has the old private key, rather than holding a private key whose
  // public half was never published. Either way the deploy restarts every function afterwards.
  await ssm.send(
    new PutParameterCommand({
      Name: properties.VerificationKeyParameterName,
      Value: publicKeyPem(signingKey),
      Type: 'String',
      Tier: 'Standard',
      Overwrite: true,
      Description: `Public key (ES256) that registry functions of ${properties.RegistryName} verify tokens with. Managed by CloudFormation.`,
    }),
  );
  await ssm.send(
    new PutParameterCommand({
      Name: properties.SigningKeyParameterName,
      Value: privatePem,
      // Encrypted with the account's AWS managed key aws/ssm (no KeyId): no key to pay for.
      Type: 'SecureString',
      Tier: 'Standard',
      Overwrite: true,
      Description: `Private key (ES256) the token endpoint of ${properties.RegistryName} signs tokens with. Managed by CloudFormation.`,
    }),
  );
  return signingKey.kid;
}

async function getParameter(ssm: SsmSender, name: string, withDecryption: boolean): Promise<string | undefined> {
  try {
    const { Parameter } = await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: withDecryption }));
    return Parameter?.Value || undefined;
  } catch (error) {
    if (errorName(error) === 'ParameterNotFound') return undefined;
    throw error;
  }
}

async function deleteParameter(ssm: SsmSender, name: string): Promise<void> {
  try {
    await ssm.send(new DeleteParameterCommand({ Name: name }));
  } catch (error) {
    if (errorName(error) !== 'ParameterNotFound') throw error;
  }
}

function errorName(error: unknown): string | undefined {
  return (error as { name?: string } | undefined)?.name;
}

/**
 * The physical id to answer for a request that failed: the one CloudFormation knows, or for a
 * failed Create the one its properties name, so that the rollback's Delete removes any
 * parameter it wrote.
 */
export function physicalResourceIdOnFailure(event: CloudFormationCustomResourceEvent): string {
  if (event.RequestType !== 'Create') return event.PhysicalResourceId;
  try {
    return physicalResourceIdOf(propertiesOf(event.ResourceProperties));
  } catch {
    return `${event.LogicalResourceId}-failed`;
  }
}
