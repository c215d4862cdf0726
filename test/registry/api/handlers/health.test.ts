/**
 * `GET /health` in the Lambda shape (API Gateway payload 2.0 through the Lambda adapter), with
 * the stores mocked: no login needed even where every other route wants one, 200 when both
 * stores answer, 503 naming the store that did not, a timeout counted as a failure, and one probe
 * per few seconds however often it is asked.
 */
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import type { RegistryConfig } from '../../../../registry/config/config.js';
import { RegistryError } from '../../../../registry/model/oci/errors.js';
import { createRegistry } from '../../../../registry/api/registry.js';
import type { Authorizer } from '../../../../registry/services/auth/authorizer.js';
import { HealthService } from '../../../../registry/services/health.js';
import { createServices } from '../../../../registry/services/services.js';
import { createAwsClients } from '../../../../registry/storage/aws-clients.js';
import type { HealthProbe } from '../../../../registry/storage/health-probe.js';
import { silentLogger } from '../../../../registry/support/logger.js';
import { lambdaToRegistryRequest, registryToLambdaResponse } from '../../../../registry/transport/lambda-adapter.js';
import { ANYONE } from '../../../../registry/model/auth/caller.js';
import { lambdaEvent } from '../../../support/lambda-event.js';
import { useAwsMocks } from '../../../support/aws-mocks.js';

const config: RegistryConfig = {
  region: 'us-east-1',
  tableName: 'health-table',
  bucketName: 'health-bucket',
  presignExpirySeconds: 300,
  uploadSessionTtlSeconds: 3600,
};

const { ddb, s3 } = useAwsMocks();
/** Refuses every route that needs anything, as a deployed registry refuses a caller without a token. */
const loginRequired: Authorizer = {
  authorize: async (_request, requirement) => {
    if (requirement.kind === 'none') return ANYONE;
    throw new RegistryError('UNAUTHORIZED', 'authentication required', { bearerChallenge: 'realm="https://registry.example.com/token"' });
  },
};

async function invoke(method: string, path: string) {
  const registry = createRegistry(createServices(config, createAwsClients(config)), silentLogger, loginRequired);
  const request = lambdaEvent(method, path, { userAgent: 'ELB-HealthChecker/2.0' });
  const response = registryToLambdaResponse(await registry(lambdaToRegistryRequest(request)), method);
  const text = response.body && response.isBase64Encoded ? Buffer.from(response.body, 'base64').toString('utf8') : response.body;
  return { ...response, body: text };
}

describe('GET /health in the Lambda shape', () => {
  it('answers 200 with a short JSON status when both stores answer, without a login', async () => {
    ddb.on(GetCommand).resolves({});
    s3.on(HeadBucketCommand).resolves({});
    const response = await invoke('GET', '/health');
    expect(response.statusCode).toBe(200);
    expect(response.headers?.['Content-Type']).toBe('application/json');
    expect(response.headers?.['Cache-Control']).toBe('no-store');
    expect(JSON.parse(response.body!)).toEqual({
      status: 'ok',
      checks: { metadata: { status: 'ok', ms: expect.any(Number) }, blobs: { status: 'ok', ms: expect.any(Number) } },
    });
    expect(ddb.commandCalls(GetCommand)[0]!.args[0].input).toMatchObject({ TableName: 'health-table', ConsistentRead: false });
    expect(s3.commandCalls(HeadBucketCommand)[0]!.args[0].input).toEqual({ Bucket: 'health-bucket' });
    // Every other route still wants a login.
    expect((await invoke('GET', '/v2/')).statusCode).toBe(401);
  });

  it('answers HEAD with the status and no body', async () => {
    ddb.on(GetCommand).resolves({});
    s3.on(HeadBucketCommand).resolves({});
    const response = await invoke('HEAD', '/health');
    expect(response.statusCode).toBe(200);
    expect(response.body ?? '').toBe('');
  });

  it('answers 503 naming the store that failed, by error name only', async () => {
    ddb.on(GetCommand).resolves({});
    s3.on(HeadBucketCommand).rejects(Object.assign(new Error('Not Found'), { name: 'NotFound', $metadata: { httpStatusCode: 404 } }));
    const response = await invoke('GET', '/health');
    expect(response.statusCode).toBe(503);
    expect(JSON.parse(response.body!)).toEqual({
      status: 'failed',
      checks: { metadata: { status: 'ok', ms: expect.any(Number) }, blobs: { status: 'failed', ms: expect.any(Number), error: 'NotFound' } },
    });
  });

  it('refuses methods other than GET and HEAD', async () => {
    expect((await invoke('POST', '/health')).statusCode).toBe(405);
  });
});

describe('HealthService', () => {
  const probeOf = (metadata: () => Promise<void>, blobs: () => Promise<void>) => ({ metadata, blobs }) as unknown as HealthProbe;

  it('counts a store that does not answer within the timeout as failed', async () => {
    const hang = (signal?: AbortSignal) =>
      new Promise<void>((_resolve, reject) => signal?.addEventListener('abort', () => reject(new Error('aborted'))));
    const probe = { metadata: (signal: AbortSignal) => hang(signal), blobs: async () => {} } as unknown as HealthProbe;
    const report = await new HealthService(probe, { timeoutMs: 50 }).check();
    expect(report.status).toBe('failed');
    expect(report.checks.metadata).toMatchObject({ status: 'failed', error: 'TimeoutError' });
    expect(report.checks.blobs.status).toBe('ok');
  });

  it('probes once per cache period, however often it is asked', async () => {
    let probes = 0;
    let now = 1_000;
    const probe = probeOf(
      async () => {
        probes++;
      },
      async () => {},
    );
    const health = new HealthService(probe, { cacheMs: 5_000, now: () => now });
    await Promise.all([health.check(), health.check(), health.check()]);
    now += 4_999;
    await health.check();
    expect(probes).toBe(1);
    now += 1;
    await health.check();
    expect(probes).toBe(2);
  });
});
