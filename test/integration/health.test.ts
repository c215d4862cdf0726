/**
 * `GET /health` in the local shape, with authentication on (the real token authorizer): open
 * to anyone while every other route wants a token; and 503 naming the blob store when the
 * bucket is missing.
 */
import { describe, expect, it } from 'vitest';
import { createApp } from '../../registry/app.js';
import { silentLogger } from '../../registry/support/logger.js';
import { useLocalStack } from './local-stack.js';

const ADMIN = { username: 'health-admin', password: 'Health-Admin-Password-1' };

describe('/health on the local registry with authentication on', () => {
  const stack = useLocalStack('health', { auth: 'cognito', admin: ADMIN });

  it('answers 200 and a short JSON status to anyone, while /v2/ wants a token', async () => {
    const response = await stack.http.fetch('/health');
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ status: 'ok', checks: { metadata: { status: 'ok' }, blobs: { status: 'ok' } } });
    const head = await stack.http.fetch('/health', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect((await stack.http.fetch('/v2/')).status).toBe(401);
  });

  it('answers 503 naming the blob store when the bucket is not there', async () => {
    const config = { ...stack.registry.config, bucketName: 'no-such-bucket' };
    const registry = createApp(config, stack.clients, silentLogger).registry();
    const response = await registry({
      method: 'GET',
      path: '/health',
      query: new URLSearchParams(),
      headers: {},
      requestId: 'health-test',
    });
    expect(response.status).toBe(503);
    expect(JSON.parse(String(response.body))).toMatchObject({
      status: 'failed',
      checks: { metadata: { status: 'ok' }, blobs: { status: 'failed', error: 'NotFound' } },
    });
  });
});
