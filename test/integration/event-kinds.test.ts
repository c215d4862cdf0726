/**
 * The event kinds beyond a client's push and delete (docs/events.md), on `npm start`'s registry
 * with PULL_EVENTS on: skopeo pulls reach a webhook subscribed with `--events pull` as one
 * `pull.counted` per repository, tag and flush (two pulls, one event with count 2), and a pull
 * through the cache reaches a `--events push` webhook as `manifest.cached`, naming the upstream.
 */
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCli } from '../auth/admin-cli.js';
import { createSkopeo, type Skopeo } from '../support/clients.js';
import { writeImage, type WrittenImage } from '../support/oci-image.js';
import { startUpstreamRegistry, type UpstreamRegistry } from '../support/upstream-registry.js';
import { signatureValid, startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';
import { useLocalStack } from './local-stack.js';

/** Each instance writes its counts this often (a minute in production): both pulls below fall in one flush. */
const FLUSH_SECONDS = 4;
const stack = useLocalStack('event-kinds', { overrides: { events: { pullEvents: true, localTargets: true, pullFlushSeconds: FLUSH_SECONDS } } });
let skopeo: Skopeo;
let image: WrittenImage;
let layout: string;
let pulls: WebhookReceiver;
let pushes: WebhookReceiver;
let upstream: UpstreamRegistry;
const secrets: Record<string, string> = {};
const host = () => new URL(stack.registry.url).host;

async function addWebhook(name: string, receiver: WebhookReceiver, events: string, pattern: string): Promise<void> {
  const added = JSON.parse(
    await adminCli(stack.dataDir, ['webhook', 'add', name, '--url', receiver.url, '--events', events, '--pattern', pattern, '--json']),
  );
  secrets[name] = added.secret;
}

beforeAll(async () => {
  const workDir = await mkdtemp(join(stack.dataDir, 'work-'));
  skopeo = await createSkopeo(join(workDir, 'skopeo'));
  layout = join(workDir, 'layout');
  image = await writeImage(layout, { tag: 'v1', layers: [{ sizeBytes: 4096 }], seed: 'event-kinds' });
  [pulls, pushes] = await Promise.all([startWebhookReceiver(), startWebhookReceiver()]);
  await addWebhook('pulls', pulls, 'pull', 'team-a/*');
  await addWebhook('pushes', pushes, 'push', '*');
  upstream = await startUpstreamRegistry({ dataDir: join(workDir, 'upstream') });
}, 120_000);

afterAll(async () => {
  await Promise.all([pulls?.close(), pushes?.close(), upstream?.stop()]);
});

describe('pull events and cached-content events', () => {
  it('two skopeo pulls of a tag reach a --events pull webhook as one signed pull.counted with count 2', async () => {
    await skopeo.copy(`oci:${layout}:v1`, `docker://${host()}/team-a/app:v1`);
    await pushes.waitFor((d) => d.event.type === 'registry.manifest.pushed' && d.event.subject === 'team-a/app:v1');
    // Both pulls in one minute: counters are per minute, so a pull on each side of one would be two events.
    while (new Date().getUTCSeconds() > 60 - 3 * FLUSH_SECONDS) await new Promise((resolve) => setTimeout(resolve, 1000));
    const pulled = Date.now();
    await Promise.all([1, 2].map((n) => skopeo.copy(`docker://${host()}/team-a/app:v1`, `oci:${join(stack.dataDir, `pulled-${n}`)}:v1`)));

    const isAppPull = (d: { event: { type: string; subject: string } }) =>
      d.event.type === 'registry.pull.counted' && d.event.subject === 'team-a/app:v1';
    const delivery = await pulls.waitFor(isAppPull, 15_000);
    expect(delivery.receivedAt - pulled).toBeLessThan((FLUSH_SECONDS + 5) * 1000);
    expect(signatureValid(delivery, secrets.pulls!)).toBe(true);
    expect(delivery.event.data).toMatchObject({ repository: 'team-a/app', tags: ['v1'], pulls: 2 });
    expect(delivery.event.data.minute).toBe(new Date(pulled).toISOString().slice(0, 16));
    // Another flush later: still that one event; and the push webhook never hears of pulls.
    await new Promise((resolve) => setTimeout(resolve, (FLUSH_SECONDS + 1) * 1000));
    expect(pulls.deliveries.filter(isAppPull)).toHaveLength(1);
    expect(pulls.deliveries.filter((d) => d.event.type !== 'registry.pull.counted')).toEqual([]);
    expect(pushes.deliveries.filter((d) => d.event.type === 'registry.pull.counted')).toEqual([]);
  }, 120_000);

  it('a pull through the cache reaches a --events push webhook as manifest.cached, naming the upstream', async () => {
    await upstream.push(layout, 'v1', 'library/web');
    await adminCli(stack.dataDir, ['upstream', 'add', 'mirror', '--url', upstream.url, '--prefix', 'mirror']);
    // Upstreams reach a running registry within 5 s (docs/pull-through.md); skopeo's first try may be early.
    let copied = false;
    for (let attempt = 0; !copied && attempt < 10; attempt++) {
      copied = await skopeo.copy(`docker://${host()}/mirror/library/web:v1`, `oci:${join(stack.dataDir, 'cached')}:v1`).then(
        () => true,
        () => new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000)),
      );
    }
    expect(copied).toBe(true);
    const cached = await pushes.waitFor((d) => d.event.type === 'registry.manifest.cached');
    expect(signatureValid(cached, secrets.pushes!)).toBe(true);
    expect(cached.event.subject).toBe('mirror/library/web:v1');
    expect(cached.event.data).toMatchObject({
      repository: 'mirror/library/web',
      digest: image.manifestDigest,
      tags: ['v1'],
      cachedFrom: 'mirror',
    });
    // Only once: a second pull is served from the cache and caches nothing.
    await skopeo.copy(`docker://${host()}/mirror/library/web:v1`, `oci:${join(stack.dataDir, 'cached-again')}:v1`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(pushes.deliveries.filter((d) => d.event.type === 'registry.manifest.cached')).toHaveLength(1);
  }, 120_000);
});
