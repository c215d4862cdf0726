/**
 * Events and webhooks in the local deployed shape (docs/events.md, docs/local-deployed-shape.md):
 * the event dispatcher bundled as the CDK bundles it, with the construct's environment, invoked
 * by the stream's event source mapping with DynamoDB-stream batches; EventBridge and the
 * Scheduler as stand-ins. An admin adds a webhook with the CLI against the shape's table, skopeo
 * pushes through the front door, and a receiver gets the signed event; a failed record is
 * handed over again; a receiver failing twice gets the third attempt from a retry schedule.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCli } from '../auth/admin-cli.js';
import { createSkopeo, type Skopeo } from '../support/clients.js';
import { useDeployedShape } from '../support/deployed-shape.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';
import { signatureValid, startWebhookReceiver, type ReceivedDelivery, type WebhookReceiver } from '../support/webhook-receiver.js';

const ADMIN = { username: 'admin', password: 'Admin-Password-1' };
// With logins, so that events name who pushed and deleted. Retries after 1 s, then 1 s: the
// production schedule is the same code with longer delays.
// Pulls counted and audited, as `-c pullEvents=true -c auditPulls=true` deploys it, written every 4 s instead of every minute.
const PULL_FLUSH_SECONDS = 4;
const shape = useDeployedShape('dsw', {
  auth: 'cognito',
  admin: ADMIN,
  webhookRetryDelaysSeconds: [1, 1, 1],
  pulls: { pullEvents: true, auditPulls: true, flushSeconds: PULL_FLUSH_SECONDS },
});
let skopeo: Skopeo;
let image: WrittenImage;
let layout: string;
let receiver: WebhookReceiver;
let secret: string;

const dataDir = () => join(shape.workDir, 'registry');
const pushed = (repository: string) => (d: ReceivedDelivery) => d.event.type === 'registry.manifest.pushed' && d.event.data.repository === repository;

beforeAll(async () => {
  skopeo = await createSkopeo(join(shape.workDir, 'skopeo'));
  layout = join(shape.workDir, 'layout');
  image = await writeImage(layout, { tag: 'v1', layers: [{ sizeBytes: 4096 }], seed: 'deployed-shape-webhooks' });
  receiver = await startWebhookReceiver();
  await skopeo.run(['login', '--tls-verify=false', '-u', ADMIN.username, '-p', ADMIN.password, shape.host]);
});

afterAll(async () => {
  await receiver?.close();
});

describe('webhooks in the deployed shape', () => {
  it('webhook add against the shape’s table, then a skopeo push through the front door delivers a signed event within seconds', async () => {
    const added = JSON.parse(
      await adminCli(dataDir(), ['webhook', 'add', 'ci', '--url', receiver.url, '--events', 'push', '--pattern', '*', '--json']),
    );
    secret = added.secret;
    const started = Date.now();
    await skopeo.copy(`oci:${layout}:v1`, `docker://${shape.host}/team-a/app:v1`);
    const pushedAt = Date.now();
    const delivery = await receiver.waitFor(pushed('team-a/app'));
    console.log(`push ${pushedAt - started} ms; delivered ${delivery.receivedAt - pushedAt} ms after skopeo returned`);
    expect(delivery.receivedAt - pushedAt).toBeLessThan(10_000);
    expect(signatureValid(delivery, secret)).toBe(true);
    expect(signatureValid(delivery, `${secret}x`)).toBe(false);
    expect(delivery.event).toMatchObject({
      specversion: '1.0',
      source: shape.shape.url,
      subject: 'team-a/app:v1',
      data: { repository: 'team-a/app', digest: image.manifestDigest, tags: ['v1'], size: image.manifestSize, actor: ADMIN.username },
    });
    // It came from the bundled dispatcher, which also put the ECR-shaped entry on the bus.
    expect(shape.shape.functions.eventDispatcher!.coldStarts()).toBeGreaterThan(0);
    expect(shape.shape.eventBridge.busEvents.filter((entry) => entry.Detail['event-id'] === delivery.event.id)).toEqual([
      expect.objectContaining({
        Source: 'serverless-oci-registry',
        DetailType: 'ECR Image Action',
        EventBusName: 'default',
        Detail: expect.objectContaining({
          'action-type': 'PUSH',
          'repository-name': 'team-a/app',
          'image-tag': 'v1',
          'image-digest': image.manifestDigest,
        }),
      }),
    ]);
  });

  it('a record that fails in the dispatcher (the bus refuses it) is handed over again, and its event is delivered once', async () => {
    shape.shape.eventBridge.failNextEvents(1);
    await skopeo.copy(`oci:${layout}:v1`, `docker://${shape.host}/team-a/again:v1`);
    const delivery = await receiver.waitFor(pushed('team-a/again'));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(receiver.deliveries.filter(pushed('team-a/again'))).toHaveLength(1);
    // Refused once, accepted on the second delivery of the record: one entry on the bus.
    expect(shape.shape.eventBridge.busEvents.filter((entry) => entry.Detail['event-id'] === delivery.event.id)).toHaveLength(1);
  });

  it('a receiver answering 500 twice gets the third attempt from a retry schedule invoking the dispatcher', async () => {
    receiver.answers.push(500, 500);
    const before = receiver.deliveries.length;
    await skopeo.copy(`oci:${layout}:v1`, `docker://${shape.host}/team-a/flaky:v2`);
    await expect.poll(() => receiver.deliveries.slice(before).filter(pushed('team-a/flaky')).length, { timeout: 20_000, interval: 200 }).toBe(3);
    const attempts = receiver.deliveries.slice(before).filter(pushed('team-a/flaky'));
    expect(new Set(attempts.map((d) => d.body)).size).toBe(1);
    expect(attempts.every((d) => signatureValid(d, secret))).toBe(true);
    // Retries wait for their schedule (at() has whole seconds: each runs at the second after the delay).
    expect(attempts[2]!.receivedAt - attempts[0]!.receivedAt).toBeGreaterThan(500);
    const listed = JSON.parse(await adminCli(dataDir(), ['webhook', 'deliveries', 'ci', '--json'])) as { eventId: string }[];
    expect(listed.find((delivery) => delivery.eventId === attempts[0]!.event.id)).toMatchObject({
      status: 'delivered',
      attempts: 3,
      statusCode: 204,
    });
    // The schedules deleted themselves once they ran.
    expect(shape.shape.eventBridge.pendingSchedules()).toEqual([]);
  });

  it('with pullEvents, skopeo pulls reach a --events pull webhook as pull.counted from the bundled functions; with auditPulls, the audit log has them', async () => {
    const pulls = await startWebhookReceiver();
    try {
      const added = JSON.parse(
        await adminCli(dataDir(), ['webhook', 'add', 'pulls', '--url', pulls.url, '--events', 'pull', '--pattern', 'team-a/*', '--json']),
      );
      // Subscriptions are read again after 5 s at most; both pulls in one minute.
      await new Promise((resolve) => setTimeout(resolve, 5500));
      while (new Date().getUTCSeconds() > 60 - 4 * PULL_FLUSH_SECONDS) await new Promise((resolve) => setTimeout(resolve, 1000));
      const started = Date.now();
      for (const n of [1, 2]) await skopeo.copy(`docker://${shape.host}/team-a/app:v1`, `oci:${join(shape.workDir, `pulled-${n}`)}:v1`);
      const isAppPull = (d: ReceivedDelivery) => d.event.type === 'registry.pull.counted' && d.event.subject === 'team-a/app:v1';
      const first = await pulls.waitFor(isAppPull, 20_000);
      console.log(`pull event delivered ${first.receivedAt - started} ms after the first pull started`);
      expect(signatureValid(first, added.secret)).toBe(true);
      // Each execution environment counts its own pulls: one event per instance that served one, together 2.
      await expect
        .poll(() => pulls.deliveries.filter(isAppPull).reduce((sum, d) => sum + Number(d.event.data.pulls), 0), { timeout: 20_000, interval: 500 })
        .toBe(2);
      expect(shape.shape.eventBridge.busEvents.find((entry) => entry.Detail['event-id'] === first.event.id)?.Detail).toMatchObject({
        'action-type': 'PULL',
        'repository-name': 'team-a/app',
        'image-tag': 'v1',
      });
      const audited = (await adminCli(dataDir(), ['audit', 'list', '--action', 'pull', '--repository', 'team-a/app', '--json']))
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as { actor: { subject: string }; reference: string; outcome: string });
      expect(audited.filter((record) => record.reference === 'v1' && record.outcome === 'success')).toHaveLength(2);
      expect(audited[0]!.actor.subject).toBe(ADMIN.username);
    } finally {
      await pulls.close();
    }
  }, 120_000);

  it('a skopeo delete delivers delete events that say who deleted (the marker in the delete’s transaction)', async () => {
    const added = JSON.parse(
      await adminCli(dataDir(), ['webhook', 'add', 'deletes', '--url', receiver.url, '--events', 'delete', '--pattern', 'team-a/*', '--json']),
    );
    // Subscriptions are read again after 5 s at most.
    await new Promise((resolve) => setTimeout(resolve, 5500));
    await skopeo.delete(`docker://${shape.host}/team-a/app:v1`);
    const manifest = await receiver.waitFor((d) => d.event.type === 'registry.manifest.deleted' && d.event.data.repository === 'team-a/app');
    const tag = await receiver.waitFor((d) => d.event.type === 'registry.tag.deleted' && d.event.subject === 'team-a/app:v1');
    for (const delivery of [manifest, tag]) {
      expect(signatureValid(delivery, added.secret)).toBe(true);
      expect(delivery.event.data).toMatchObject({ reason: 'request', actor: ADMIN.username });
    }
    expect(shape.shape.eventBridge.busEvents.find((entry) => entry.Detail['event-id'] === manifest.event.id)?.Detail).toMatchObject({
      'action-type': 'DELETE',
      actor: ADMIN.username,
      'deletion-reason': 'request',
    });
  });
});
