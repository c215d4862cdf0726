import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  DeleteParameterCommand,
  GetParameterCommand,
  ParameterNotFound,
  PutParameterCommand,
  SSMClient,
  type PutParameterCommandInput,
} from '@aws-sdk/client-ssm';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  generateSigningKeyPem as generatePem,
  publicKeyPem,
  signingKeyFromPem,
  verificationKeyFromPem,
} from '../../registry/services/auth/signing-keys.js';
import { handler } from '../../functions/token-keys-resource.js';
import { generateUploadTicketSecret, manageTokenKeys, physicalResourceIdOf } from '../../registry/services/auth/token-keys.js';
import { parseTicketSecrets } from '../../registry/services/uploads/upload-tickets.js';

/** The custom resource handler behind lib/constructs/token-keys.ts, against a mocked SSM. */

const SIGNING = '/oci-registry/token-signing-key';
const VERIFICATION = '/oci-registry/token-verification-key';
const PROPERTIES = {
  ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:keys',
  SigningKeyParameterName: SIGNING,
  VerificationKeyParameterName: VERIFICATION,
  KeyGeneration: '1',
  RegistryName: 'oci-registry',
};
const PHYSICAL_ID = `${SIGNING},${VERIFICATION}`;
const TICKET_SECRET = '/oci-registry/upload-ticket-secret';
/** The properties with the upload gateway turned on. */
const GATEWAY_PROPERTIES = { ...PROPERTIES, UploadTicketSecretParameterName: TICKET_SECRET };

const ssm = mockClient(SSMClient);
const notFound = () => new ParameterNotFound({ message: 'not found', $metadata: {} });

function event(
  request: Partial<CloudFormationCustomResourceEvent> & Pick<CloudFormationCustomResourceEvent, 'RequestType'>,
  responseUrl = 'http://unused',
): CloudFormationCustomResourceEvent {
  return {
    ServiceToken: PROPERTIES.ServiceToken,
    ResponseURL: responseUrl,
    StackId: 'arn:aws:cloudformation:us-east-1:123456789012:stack/oci-registry/1',
    RequestId: 'request-1',
    LogicalResourceId: 'TokenKeysAAD69857',
    ResourceType: 'Custom::RegistryTokenKeys',
    ResourceProperties: PROPERTIES,
    ...request,
  } as CloudFormationCustomResourceEvent;
}

function puts(): PutParameterCommandInput[] {
  return ssm.commandCalls(PutParameterCommand).map((call) => call.args[0].input);
}

/** Answers GetParameter with what was put, as SSM would (the private key's value stays encrypted). */
function storeParameters(values: Record<string, string | undefined>): void {
  ssm.on(GetParameterCommand).callsFake((input: { Name: string }) => {
    const value = values[input.Name];
    if (value === undefined) throw notFound();
    return { Parameter: { Name: input.Name, Value: value } };
  });
}

beforeEach(() => {
  ssm.reset();
  ssm.on(PutParameterCommand).resolves({ Version: 1 });
  ssm.on(DeleteParameterCommand).resolves({});
});

describe('manageTokenKeys', () => {
  it('on Create writes a fresh ES256 pair: the public key as a String, the private key as a SecureString', async () => {
    const result = await manageTokenKeys(event({ RequestType: 'Create' }), ssm as unknown as SSMClient);

    const [verification, signing] = puts();
    expect(verification).toMatchObject({ Name: VERIFICATION, Type: 'String', Tier: 'Standard', Overwrite: true });
    expect(signing).toMatchObject({ Name: SIGNING, Type: 'SecureString', Tier: 'Standard', Overwrite: true });
    // The AWS managed key aws/ssm: no KeyId, nothing to pay for.
    expect(signing.KeyId).toBeUndefined();
    expect(signing.Value).toContain('BEGIN PRIVATE KEY');
    expect(verification.Value).toContain('BEGIN PUBLIC KEY');

    const signingKey = signingKeyFromPem(signing.Value!);
    expect(signingKey.jwk.crv).toBe('P-256');
    expect(publicKeyPem(signingKey)).toBe(verification.Value);
    expect(result).toEqual({
      physicalResourceId: PHYSICAL_ID,
      data: {
        SigningKeyParameterName: SIGNING,
        VerificationKeyParameterName: VERIFICATION,
        KeyId: signingKey.kid,
        UploadTicketSecretParameterName: '',
        OriginSecretParameterName: '',
      },
    });
  });

  it('writes a different key pair each time it creates one', async () => {
    const first = await manageTokenKeys(event({ RequestType: 'Create' }), ssm as unknown as SSMClient);
    const second = await manageTokenKeys(event({ RequestType: 'Create' }), ssm as unknown as SSMClient);
    expect(first.data.KeyId).not.toBe(second.data.KeyId);
  });

  it('on Update keeps the pair in place (a deploy logs nobody out), checking the private key without decrypting it', async () => {
    const created = await manageTokenKeys(event({ RequestType: 'Create' }), ssm as unknown as SSMClient);
    const [verification] = puts();
    ssm.resetHistory();
    storeParameters({ [SIGNING]: 'AQICAH...ciphertext', [VERIFICATION]: verification.Value });

    const result = await manageTokenKeys(
      event({ RequestType: 'Update', PhysicalResourceId: PHYSICAL_ID, OldResourceProperties: PROPERTIES }),
      ssm as unknown as SSMClient,
    );

    expect(puts()).toEqual([]);
    expect(ssm.commandCalls(GetParameterCommand).map((call) => call.args[0].input.WithDecryption)).toEqual([false, false]);
    expect(result).toEqual(created);
  });

  it('on Update writes a new pair when a parameter has gone missing', async () => {
    storeParameters({ [SIGNING]: undefined, [VERIFICATION]: 'stale' });
    const result = await manageTokenKeys(
      event({ RequestType: 'Update', PhysicalResourceId: PHYSICAL_ID, OldResourceProperties: PROPERTIES }),
      ssm as unknown as SSMClient,
    );
    expect(puts().map((input) => input.Name)).toEqual([VERIFICATION, SIGNING]);
    expect(result.physicalResourceId).toBe(PHYSICAL_ID);
  });

  it('rotates in place when the key generation changes: same parameters, same physical id, a new key', async () => {
    const result = await manageTokenKeys(
      event({
        RequestType: 'Update',
        PhysicalResourceId: PHYSICAL_ID,
        OldResourceProperties: PROPERTIES,
        ResourceProperties: { ...PROPERTIES, KeyGeneration: '2' },
      }),
      ssm as unknown as SSMClient,
    );
    expect(ssm.commandCalls(GetParameterCommand)).toHaveLength(0);
    const [verification, signing] = puts();
    expect([verification.Name, signing.Name]).toEqual([VERIFICATION, SIGNING]);
    expect(result).toMatchObject({ physicalResourceId: PHYSICAL_ID, data: { KeyId: verificationKeyFromPem(verification.Value!).kid } });
  });

  it('writes a pair under new names with a new physical id, so that CloudFormation deletes the old names', async () => {
    storeParameters({});
    const renamed = {
      ...PROPERTIES,
      SigningKeyParameterName: '/renamed/token-signing-key',
      VerificationKeyParameterName: '/renamed/token-verification-key',
    };
    const result = await manageTokenKeys(
      event({ RequestType: 'Update', PhysicalResourceId: PHYSICAL_ID, OldResourceProperties: PROPERTIES, ResourceProperties: renamed }),
      ssm as unknown as SSMClient,
    );
    expect(puts().map((input) => input.Name)).toEqual(['/renamed/token-verification-key', '/renamed/token-signing-key']);
    expect(result.physicalResourceId).toBe(physicalResourceIdOf(renamed));
    expect(result.physicalResourceId).not.toBe(PHYSICAL_ID);
  });

  it('on Delete removes the parameters its physical id names, and tolerates their absence', async () => {
    ssm.on(DeleteParameterCommand, { Name: SIGNING }).rejects(notFound());
    await manageTokenKeys(
      event({ RequestType: 'Delete', PhysicalResourceId: '/old/token-signing-key,/old/token-verification-key' }),
      ssm as unknown as SSMClient,
    );
    expect(ssm.commandCalls(DeleteParameterCommand).map((call) => call.args[0].input.Name)).toEqual([
      '/old/token-signing-key',
      '/old/token-verification-key',
    ]);
    expect(puts()).toEqual([]);
  });

  it('on Delete of a resource whose Create failed before naming anything, deletes nothing', async () => {
    await manageTokenKeys(event({ RequestType: 'Delete', PhysicalResourceId: 'TokenKeysAAD69857-failed' }), ssm as unknown as SSMClient);
    expect(ssm.commandCalls(DeleteParameterCommand)).toHaveLength(0);
  });
});

describe('manageTokenKeys with the upload ticket secret', () => {
  const manage = (request: Parameters<typeof event>[0]) => manageTokenKeys(event(request), ssm as unknown as SSMClient);
  const ticketPuts = () => puts().filter((input) => input.Name === TICKET_SECRET);
  const deletes = () => ssm.commandCalls(DeleteParameterCommand).map((call) => call.args[0].input.Name);
  /** Creates the keys (with `properties`), then has SSM answer with what is stored: the key pair and `stored`. */
  const createThenStore = async (properties: typeof PROPERTIES | undefined, stored: Record<string, string> = {}) => {
    const created = await manage({ RequestType: 'Create', ...(properties ? { ResourceProperties: properties } : {}) });
    const [verification] = puts();
    ssm.resetHistory();
    storeParameters({ [SIGNING]: 'AQICAH...ciphertext', [VERIFICATION]: verification.Value, ...stored });
    return created;
  };
  const update = (from: typeof PROPERTIES, to: typeof PROPERTIES) =>
    manage({ RequestType: 'Update', PhysicalResourceId: PHYSICAL_ID, OldResourceProperties: from, ResourceProperties: to });

  it('on Create also writes a random SecureString of 64 characters, one secret (no separators), and answers its name only', async () => {
    const result = await manage({ RequestType: 'Create', ResourceProperties: GATEWAY_PROPERTIES });

    expect(puts().map((input) => input.Name)).toEqual([VERIFICATION, SIGNING, TICKET_SECRET]);
    const [secret] = ticketPuts();
    expect(secret).toMatchObject({ Type: 'SecureString', Tier: 'Standard', Overwrite: true });
    expect(secret.KeyId).toBeUndefined();
    expect(secret.Value).toMatch(/^[A-Za-z0-9_-]{64}$/);
    expect(parseTicketSecrets(secret.Value!)).toEqual([secret.Value]);
    // The physical id is the same as without the gateway: turning it on is no replacement.
    expect(result.physicalResourceId).toBe(PHYSICAL_ID);
    expect(result.data.UploadTicketSecretParameterName).toBe(TICKET_SECRET);
    expect(JSON.stringify(result)).not.toContain(secret.Value);
  });

  it('generates a different secret each time, from 48 random bytes', () => {
    const secrets = new Set(Array.from({ length: 20 }, () => generateUploadTicketSecret()));
    expect(secrets.size).toBe(20);
    for (const secret of secrets) expect(Buffer.from(secret, 'base64url')).toHaveLength(48);
  });

  it('writes no secret without the property', async () => {
    const result = await manage({ RequestType: 'Create' });
    expect(ticketPuts()).toEqual([]);
    expect(result.data.UploadTicketSecretParameterName).toBe('');
  });

  it('on Update keeps the secret (and the key pair), checking it exists without decrypting it', async () => {
    const created = await createThenStore(GATEWAY_PROPERTIES, { [TICKET_SECRET]: 'AQICAH...ciphertext' });

    const result = await update(GATEWAY_PROPERTIES, GATEWAY_PROPERTIES);

    expect(puts()).toEqual([]);
    expect(deletes()).toEqual([]);
    expect(ssm.commandCalls(GetParameterCommand).map((call) => call.args[0].input)).toContainEqual({ Name: TICKET_SECRET, WithDecryption: false });
    expect(ssm.commandCalls(GetParameterCommand).every((call) => call.args[0].input.WithDecryption === false)).toBe(true);
    expect(result).toEqual(created);
  });

  it('on Update writes the secret again when it has gone missing, keeping the key pair', async () => {
    await createThenStore(undefined);
    await update(GATEWAY_PROPERTIES, GATEWAY_PROPERTIES);
    expect(puts().map((input) => input.Name)).toEqual([TICKET_SECRET]);
  });

  it('replaces the secret with the key pair when the key generation changes', async () => {
    const result = await manage({
      RequestType: 'Update',
      PhysicalResourceId: PHYSICAL_ID,
      OldResourceProperties: GATEWAY_PROPERTIES,
      ResourceProperties: { ...GATEWAY_PROPERTIES, KeyGeneration: '2' },
    });
    expect(ssm.commandCalls(GetParameterCommand)).toHaveLength(0);
    expect(puts().map((input) => input.Name)).toEqual([VERIFICATION, SIGNING, TICKET_SECRET]);
    expect(result.physicalResourceId).toBe(PHYSICAL_ID);
  });

  it('writes the secret when the gateway is turned on, keeping the key pair and the physical id', async () => {
    const created = await createThenStore(undefined, { [TICKET_SECRET]: 'left over' });

    const result = await update(PROPERTIES, GATEWAY_PROPERTIES);

    // A value left over from before is not trusted: the resource writes its own.
    expect(puts().map((input) => input.Name)).toEqual([TICKET_SECRET]);
    expect(result).toEqual({ physicalResourceId: PHYSICAL_ID, data: { ...created.data, UploadTicketSecretParameterName: TICKET_SECRET } });
  });

  it('deletes the secret when the gateway is turned off, keeping the key pair and the physical id', async () => {
    const created = await createThenStore(undefined, { [TICKET_SECRET]: 'AQICAH...ciphertext' });

    const result = await update(GATEWAY_PROPERTIES, PROPERTIES);

    expect(puts()).toEqual([]);
    expect(deletes()).toEqual([TICKET_SECRET]);
    expect(result).toEqual(created);
  });

  it('on Delete removes the secret its properties name, besides the key pair, and tolerates its absence', async () => {
    ssm.on(DeleteParameterCommand, { Name: TICKET_SECRET }).rejects(notFound());
    await manage({ RequestType: 'Delete', PhysicalResourceId: PHYSICAL_ID, ResourceProperties: GATEWAY_PROPERTIES });
    expect(deletes()).toEqual([SIGNING, VERIFICATION, TICKET_SECRET]);
  });

  it('on Delete without the property removes the key pair only', async () => {
    await manage({ RequestType: 'Delete', PhysicalResourceId: PHYSICAL_ID, ResourceProperties: PROPERTIES });
    expect(deletes()).toEqual([SIGNING, VERIFICATION]);
  });

  it('refuses a secret name that is no parameter name', async () => {
    await expect(
      manage({ RequestType: 'Create', ResourceProperties: { ...PROPERTIES, UploadTicketSecretParameterName: 'upload-ticket-secret' } }),
    ).rejects.toThrow(/UploadTicketSecretParameterName/);
    expect(puts()).toEqual([]);
  });
});

describe('manageTokenKeys with the front door', () => {
  const ORIGIN_SECRET = '/oci-registry/origin-secret';
  const KVS = 'arn:aws:cloudfront::123456789012:key-value-store/0f7d1d0e-1111-2222-3333-444455556666';
  const FRONT_DOOR_PROPERTIES = { ...GATEWAY_PROPERTIES, OriginSecretParameterName: ORIGIN_SECRET, KeyValueStoreArn: KVS };
  const written: { arn: string; values: Record<string, string> }[] = [];
  const writer = async (arn: string, values: Record<string, string>) => {
    written.push({ arn, values });
  };
  const manage = (request: Parameters<typeof event>[0]) => manageTokenKeys(event(request), ssm as unknown as SSMClient, writer);
  beforeEach(() => {
    written.length = 0;
  });

  it('on Create writes the ticket and origin secrets to SSM and the same values to the KeyValueStore', async () => {
    const result = await manage({ RequestType: 'Create', ResourceProperties: FRONT_DOOR_PROPERTIES });
    const ticket = puts().find((input) => input.Name === TICKET_SECRET)!;
    const origin = puts().find((input) => input.Name === ORIGIN_SECRET)!;
    expect(origin).toMatchObject({ Type: 'SecureString', Overwrite: true });
    expect(origin.Value).toHaveLength(64);
    expect(origin.Value).not.toBe(ticket.Value);
    expect(written).toEqual([{ arn: KVS, values: { 'ticket-secrets': ticket.Value, 'origin-secret': origin.Value } }]);
    // Names only: a secret's value never reaches CloudFormation.
    expect(JSON.stringify(result)).not.toContain(origin.Value!);
    expect(result.data.OriginSecretParameterName).toBe(ORIGIN_SECRET);
  });

  it('on Update keeps both secrets, reading them decrypted to write the KeyValueStore again', async () => {
    storeParameters({
      [SIGNING]: 'encrypted',
      [VERIFICATION]: publicKeyPem(signingKeyFromPem(generatePem())),
      [TICKET_SECRET]: 't'.repeat(64),
      [ORIGIN_SECRET]: 'o'.repeat(64),
    });
    await manage({
      RequestType: 'Update',
      PhysicalResourceId: PHYSICAL_ID,
      ResourceProperties: FRONT_DOOR_PROPERTIES,
      OldResourceProperties: FRONT_DOOR_PROPERTIES,
    });
    expect(puts()).toEqual([]);
    expect(written).toEqual([{ arn: KVS, values: { 'ticket-secrets': 't'.repeat(64), 'origin-secret': 'o'.repeat(64) } }]);
  });

  it('on Delete removes the origin secret too', async () => {
    await manage({ RequestType: 'Delete', PhysicalResourceId: PHYSICAL_ID, ResourceProperties: FRONT_DOOR_PROPERTIES });
    expect(ssm.commandCalls(DeleteParameterCommand).map((call) => call.args[0].input.Name)).toEqual([
      SIGNING,
      VERIFICATION,
      TICKET_SECRET,
      ORIGIN_SECRET,
    ]);
    expect(written).toEqual([]);
  });

  it('refuses a KeyValueStore without both secrets', async () => {
    await expect(manage({ RequestType: 'Create', ResourceProperties: { ...PROPERTIES, KeyValueStoreArn: KVS } })).rejects.toThrow(/KeyValueStoreArn/);
  });
});

describe('handler', () => {
  let server: Server;
  let responseUrl: string;
  const responses: { method?: string; contentType?: string; body: Record<string, unknown> }[] = [];

  beforeAll(async () => {
    server = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        responses.push({ method: request.method, contentType: request.headers['content-type'], body: JSON.parse(body) as Record<string, unknown> });
        response.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    responseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/presigned?X-Amz-Signature=x`;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => {
    responses.length = 0;
    // The handler logs one JSON line per step for CloudWatch; keep the test output quiet.
    vi.spyOn(console, 'log').mockImplementation(() => undefined);
  });

  it('answers CloudFormation with SUCCESS, the physical id and the attributes, by a PUT without content type', async () => {
    await handler(event({ RequestType: 'Create' }, responseUrl));
    expect(responses).toHaveLength(1);
    expect(responses[0]).toMatchObject({ method: 'PUT', contentType: '' });
    expect(responses[0].body).toMatchObject({
      Status: 'SUCCESS',
      PhysicalResourceId: PHYSICAL_ID,
      StackId: 'arn:aws:cloudformation:us-east-1:123456789012:stack/oci-registry/1',
      RequestId: 'request-1',
      LogicalResourceId: 'TokenKeysAAD69857',
      Data: { SigningKeyParameterName: SIGNING, VerificationKeyParameterName: VERIFICATION, KeyId: expect.any(String) },
    });
    expect(JSON.stringify(responses[0].body)).not.toContain('PRIVATE KEY');
  });

  it('never answers or logs the ticket secret', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    await handler(event({ RequestType: 'Create', ResourceProperties: GATEWAY_PROPERTIES }, responseUrl));
    const secret = puts().find((input) => input.Name === TICKET_SECRET)!.Value!;
    expect(responses[0].body).toMatchObject({ Status: 'SUCCESS', Data: { UploadTicketSecretParameterName: TICKET_SECRET } });
    expect(JSON.stringify(responses[0].body)).not.toContain(secret);
    expect(JSON.stringify(log.mock.calls)).not.toContain(secret);
  });

  it('answers FAILED with the reason when SSM refuses, naming the parameters so that the rollback deletes them', async () => {
    ssm
      .on(PutParameterCommand)
      .rejects(Object.assign(new Error('User is not authorized to perform ssm:PutParameter'), { name: 'AccessDeniedException' }));
    await handler(event({ RequestType: 'Create' }, responseUrl));
    expect(responses[0].body).toMatchObject({
      Status: 'FAILED',
      Reason: 'AccessDeniedException: User is not authorized to perform ssm:PutParameter',
      PhysicalResourceId: PHYSICAL_ID,
    });
  });

  it('answers FAILED, keeping the physical id, when an Update cannot be done', async () => {
    await handler(
      event(
        { RequestType: 'Update', PhysicalResourceId: PHYSICAL_ID, OldResourceProperties: PROPERTIES, ResourceProperties: { ServiceToken: 'x' } },
        responseUrl,
      ),
    );
    expect(responses[0].body).toMatchObject({
      Status: 'FAILED',
      PhysicalResourceId: PHYSICAL_ID,
      Reason: expect.stringContaining('SigningKeyParameterName'),
    });
  });
});
