import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { configFromEnv } from '../../../../registry/config/config.js';
import { sendDelivery } from '../../../../registry/services/events/webhook-delivery.js';
import { checkWebhookTarget } from '../../../../registry/services/events/webhook-target.js';

/** The policy the deployed dispatcher runs with: the CDK writes no WEBHOOK_LOCAL_TARGETS. */
const deployed = { localTargets: configFromEnv({ TABLE_NAME: 't', BUCKET_NAME: 'b', EVENT_BUS_NAME: 'default' }).events!.localTargets };

describe('webhook targets under the deployed configuration', () => {
  it.each([
    ['http://example.com/hook', /http: URLs are refused/],
    ['https://127.0.0.1/hook', /private, loopback/],
    ['https://169.254.169.254/latest/meta-data/', /private, loopback/],
    ['https://10.1.2.3/', /private/],
    ['https://192.168.0.1/', /private/],
    ['https://[::1]/', /private/],
    ['https://[fd00::1]/', /private/],
    ['https://[fe80::1]/', /private/],
    ['https://[::ffff:169.254.169.254]/', /private/],
    ['https://localhost/hook', /localhost resolves to .*private, loopback/],
    ['https://user:pw@example.com/', /credentials/],
  ])('refuses %s', async (url, why) => {
    await expect(checkWebhookTarget(url, deployed)).rejects.toThrow(why);
  });

  it('allows a private address only with --allow-private, and still only over https', async () => {
    await expect(checkWebhookTarget('https://10.1.2.3/', deployed, { allowPrivate: true })).resolves.toBeInstanceOf(URL);
    await expect(checkWebhookTarget('http://10.1.2.3/', deployed, { allowPrivate: true })).rejects.toThrow(/http:/);
  });

  it('locally allows http to loopback, but not the metadata address', async () => {
    await expect(checkWebhookTarget('http://127.0.0.1:9/hook', { localTargets: true })).resolves.toBeInstanceOf(URL);
    await expect(checkWebhookTarget('http://169.254.169.254/', { localTargets: true })).rejects.toThrow(/private/);
  });

  it('checks again at delivery: a name that resolves to loopback now is refused before connecting (DNS rebinding)', async () => {
    let connections = 0;
    const server = createServer((_request, response) => response.end()).on('connection', () => connections++);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    try {
      const options = { body: '{}', secret: 's', deliveryId: 'd', eventType: 'registry.ping', target: {}, timeoutMs: 2000 };
      // Delivered over http locally, to show the receiver is there ...
      expect((await sendDelivery({ ...options, url: `http://localhost:${port}/`, policy: { localTargets: true } })).outcome).toBe('delivered');
      // ... and refused for good under the deployed policy (https would be required too: the
      // lookup check is what refuses a name; an IP literal is refused before any lookup).
      const refused = await sendDelivery({ ...options, url: `https://localhost:${port}/`, policy: deployed });
      expect(refused).toMatchObject({ outcome: 'failed', error: expect.stringMatching(/localhost resolves to .*loopback/) });
      expect(connections).toBe(1);
    } finally {
      server.close();
    }
  });
});
