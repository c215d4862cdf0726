/**
 * Events and webhooks end to end on `npm start`'s registry (docs/events.md): an admin adds a
 * webhook with the CLI, skopeo pushes and deletes, and a receiver in the test gets signed
 * CloudEvents from the stream dispatcher; a receiver failing twice gets the third attempt.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCli, runAdminCli } from '../auth/admin-cli.js';
import { createSkopeo, type Skopeo } from '../support/clients.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';
import { signatureValid, startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';
import { useLocalStack } from './local-stack.js';
import { LOCAL_CREDENTIALS } from '../../scripts/local/local-credentials.js';
import { createAwsClients } from '../../registry/storage/aws-clients.js';
import { createServices } from '../../registry/services/services.js';
import { applyRetention } from '../../registry/services/policies/apply-retention.js';

// Retries after 1 s, then 1 s: the production schedule is the same code with longer delays.
const stack = useLocalStack('webhooks', { overrides: { events: { pullEvents: false, localTargets: true, retryDelaysSeconds: [1, 1, 1] } } });
let workDir: string;
let skopeo: Skopeo;
let image: WrittenImage;
let layout: string;
let receiver: WebhookReceiver;

const host = () => new URL(stack.registry.url).host;

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'webhooks-clients-'));
  skopeo = await createSkopeo(join(workDir, 'skopeo'));
  layout = join(workDir, 'layout');
  image = await writeImage(layout, { tag: 'v1', layers: [{ sizeBytes: 4096 }], seed: 'webhooks' });
  receiver = await startWebhookReceiver();
});

afterAll(async () => {
  await receiver?.close();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('webhooks', () => {
  let secret: string;

  it('webhook add prints a secret once, keeps it in a 0600 file, and never lists it', async () => {
    const added = JSON.parse(
      await adminCli(stack.dataDir, ['webhook', 'add', 'ci', '--url', receiver.url, '--events', 'push,delete', '--pattern', 'team-a/*', '--json']),
    );
    secret = added.secret;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await stat(join(stack.dataDir, 'webhook-secrets', 'ci'))).mode & 0o777).toBe(0o600);
    const listed = await adminCli(stack.dataDir, ['webhook', 'list', '--json']);
    expect(JSON.parse(listed)).toMatchObject([{ name: 'ci', url: receiver.url, events: ['push', 'delete'], pattern: 'team-a/*' }]);
    expect(listed).not.toContain(secret);
  });

  it('a skopeo push delivers a signed push event within seconds', async () => {
    const started = Date.now();
    await skopeo.copy(`oci:${layout}:v1`, `docker://${host()}/team-a/app:v1`);
    const delivery = await receiver.waitFor((d) => d.event.type === 'registry.manifest.pushed');
    expect(delivery.receivedAt - started).toBeLessThan(10_000);
    expect(signatureValid(delivery, secret)).toBe(true);
    expect(signatureValid(delivery, `${secret}x`)).toBe(false);
    expect(delivery.headers['content-type']).toContain('application/cloudevents+json');
    expect(delivery.headers['x-registry-delivery']).toMatch(/^[0-9a-f]{32}$/);
    expect(Number(delivery.headers['x-registry-timestamp'])).toBeGreaterThan(started / 1000 - 5);
    expect(delivery.event).toMatchObject({
      specversion: '1.0',
      subject: 'team-a/app:v1',
      data: { repository: 'team-a/app', digest: image.manifestDigest, tags: ['v1'], size: image.manifestSize },
    });
    expect(delivery.event.data.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
  });

  it('a push outside the pattern delivers nothing', async () => {
    await skopeo.copy(`oci:${layout}:v1`, `docker://${host()}/team-b/app:v1`);
    await skopeo.copy(`oci:${layout}:v1`, `docker://${host()}/team-a/marker:v1`);
    await receiver.waitFor((d) => d.event.subject === 'team-a/marker:v1');
    expect(receiver.deliveries.filter((d) => String(d.event.subject).startsWith('team-b/'))).toEqual([]);
  });

  it('a skopeo delete delivers signed delete events for the manifest and its tag', async () => {
    await skopeo.delete(`docker://${host()}/team-a/app:v1`);
    const manifest = await receiver.waitFor((d) => d.event.type === 'registry.manifest.deleted');
    const tag = await receiver.waitFor((d) => d.event.type === 'registry.tag.deleted' && d.event.subject === 'team-a/app:v1');
    expect(signatureValid(manifest, secret) && signatureValid(tag, secret)).toBe(true);
    expect(manifest.event.data).toMatchObject({ repository: 'team-a/app', digest: image.manifestDigest });
    // A client's delete, marked in its transactions; open mode has no actor.
    expect(manifest.event.data.reason).toBe('request');
    expect(tag.event.data.reason).toBe('request');
    expect(manifest.event.data.actor).toBeUndefined();
  });

  it('retention’s deletions say so: reason retention, actor registry:retention', async () => {
    const older = await writeImage(join(workDir, 'older'), { tag: 'v1', layers: [{ sizeBytes: 1024 }], seed: 'webhooks-retention-older' });
    await skopeo.copy(`oci:${join(workDir, 'older')}:v1`, `docker://${host()}/team-a/kept:v1`);
    await skopeo.copy(`oci:${layout}:v1`, `docker://${host()}/team-a/kept:v2`);
    const services = createServices(stack.registry.config, createAwsClients(stack.registry.config, LOCAL_CREDENTIALS));
    await services.policies.putRetentionRule({ pattern: 'team-a/kept', keepLast: 1, untagged: 'delete' });
    // What the maintenance run does; untagged manifests go at once here (an hour's grace by default).
    const report = await applyRetention(services, { dryRun: false, repositories: ['team-a/kept'], untaggedGraceMs: 0 });
    expect(report.totals).toMatchObject({ tagsDeleted: 1, manifestsDeleted: 1 });
    const tag = await receiver.waitFor((d) => d.event.type === 'registry.tag.deleted' && d.event.subject === 'team-a/kept:v1');
    const manifest = await receiver.waitFor((d) => d.event.type === 'registry.manifest.deleted' && d.event.data.digest === older.manifestDigest);
    for (const delivery of [tag, manifest]) {
      expect(signatureValid(delivery, secret)).toBe(true);
      expect(delivery.event.data).toMatchObject({ repository: 'team-a/kept', reason: 'retention', actor: 'registry:retention' });
    }
  });

  it('a receiver answering 500 twice gets the third delivery, with the same body and event id', async () => {
    receiver.answers.push(500, 500);
    const before = receiver.deliveries.length;
    await skopeo.copy(`oci:${layout}:v1`, `docker://${host()}/team-a/flaky:v2`);
    const isFlaky = (d: { event: { subject: string; type: string } }) =>
      d.event.subject === 'team-a/flaky:v2' && d.event.type === 'registry.manifest.pushed';
    await expect.poll(() => receiver.deliveries.slice(before).filter(isFlaky).length, { timeout: 15_000, interval: 200 }).toBe(3);
    const attempts = receiver.deliveries.slice(before).filter(isFlaky);
    expect(new Set(attempts.map((d) => d.body)).size).toBe(1);
    expect(new Set(attempts.map((d) => d.headers['x-registry-delivery'])).size).toBe(1);
    const eventId = attempts[0]!.event.id;
    const listed = JSON.parse(await adminCli(stack.dataDir, ['webhook', 'deliveries', 'ci', '--json'])) as { eventId: string }[];
    expect(listed.find((delivery) => delivery.eventId === eventId)).toMatchObject({
      eventType: 'registry.manifest.pushed',
      status: 'delivered',
      attempts: 3,
      statusCode: 204,
    });
  });

  it('webhook test sends a signed ping; remove stops deliveries and deletes the secret', async () => {
    const before = receiver.deliveries.length;
    expect(await adminCli(stack.dataDir, ['webhook', 'test', 'ci'])).toMatch(/delivered \(HTTP 204/);
    const ping = receiver.deliveries[before]!;
    expect(ping.event.type).toBe('registry.ping');
    expect(signatureValid(ping, secret)).toBe(true);
    await adminCli(stack.dataDir, ['webhook', 'remove', 'ci']);
    await expect(stat(join(stack.dataDir, 'webhook-secrets', 'ci'))).rejects.toThrow();
    expect((await runAdminCli(stack.dataDir, ['webhook', 'test', 'ci'])).code).not.toBe(0);
  });
});
