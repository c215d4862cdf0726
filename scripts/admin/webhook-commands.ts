/** `webhook ...`: subscriptions to registry events, delivered signed (docs/events.md). */
import { join } from 'node:path';
import { isValidPattern } from '../../registry/model/auth/access-model.js';
import { EVENT_KINDS } from '../../registry/services/events/registry-event.js';
import { WebhookDispatcher } from '../../registry/services/events/webhook-dispatcher.js';
import { WebhookTargetError, checkWebhookTarget, type WebhookTargetPolicy } from '../../registry/services/events/webhook-target.js';
import { webhookSecrets } from '../../registry/services/events/events.js';
import { generateWebhookSecret, type WebhookSecrets } from '../../registry/storage/webhook-secrets.js';
import { silentLogger } from '../../registry/support/logger.js';
import type { AdminClients } from './clients.js';
import { formatTable, type Command } from './command.js';
import { AdminError, UsageError } from './errors.js';

const WEBHOOK_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const TEST_TIMEOUT_MS = 10_000;

export const webhookCommands: Command[] = [
  {
    name: 'webhook add',
    changes: true,
    args: ['<name>'],
    options: ['url', 'events', 'pattern', 'secret-stdin', 'allow-private', 'json'],
    optionsUsage: "--url <url> --events push,delete[,pull] --pattern '<pattern>' [--secret-stdin] [--allow-private] [--json]",
    summary: 'subscribe a URL to registry events; the signing secret is shown once',
    details:
      'Each event is POSTed as a CloudEvents 1.0 JSON body signed in X-Registry-Signature-256: sha256=<hex HMAC-SHA256 of the body>.\n' +
      "--pattern: the repositories, as grants name them: '*', 'team-a/*', 'team-a/app'.\n" +
      '--secret-stdin: read the secret instead of generating one. --allow-private: let it reach private, loopback and link-local addresses.\n' +
      "Example: webhook add ci --url https://ci.example.com/hook --events push --pattern 'team-a/*'",
    async run({ args, options, clients, out }) {
      const name = checkWebhookName(args[0]);
      if (!options.url) throw new UsageError('--url <url> is required');
      const events = parseEvents(options.events);
      const pattern = options.pattern ?? '';
      if (!isValidPattern(pattern)) throw new UsageError(`--pattern "${pattern}": expected '*', 'team-a/*' or a repository name`);
      const allowPrivate = options['allow-private'] === true;
      try {
        await checkWebhookTarget(options.url, policyOf(clients), { allowPrivate });
      } catch (error) {
        if (error instanceof WebhookTargetError) throw new UsageError(`--url: ${error.message}`);
        throw error;
      }
      const secret = options['secret-stdin'] ? (await out.readStdin()).trim() : generateWebhookSecret();
      if (secret.length < 16) throw new UsageError('the secret must be at least 16 characters');
      const secrets = await secretsOf(clients);
      // The secret first: a webhook never exists without one to sign with.
      await secrets.put(name, secret);
      const added = await clients.webhookStore().add({ name, url: options.url, events, pattern, allowPrivate, createdAt: Date.now() });
      if (!added) throw new AdminError(`webhook ${name} exists already (remove it first)`);
      if (options.json) return out.json({ name, url: options.url, events, pattern, allowPrivate, ...(options['secret-stdin'] ? {} : { secret }) });
      out.line(`Added webhook ${name}: ${events.join(',')} events of '${pattern}' to ${options.url}`);
      if (!options['secret-stdin']) {
        out.line(`Secret: ${secret}`);
        out.note('The secret is shown only this once: the receiver checks X-Registry-Signature-256 with it.');
      }
    },
  },
  {
    name: 'webhook list',
    changes: false,
    args: [],
    options: ['json'],
    optionsUsage: '[--json]',
    summary: 'list webhooks (never their secrets)',
    async run({ options, clients, out }) {
      const webhooks = (await clients.webhookStore().list()).sort((a, b) => a.name.localeCompare(b.name));
      if (options.json) return out.json(webhooks.map((webhook) => ({ ...webhook, createdAt: new Date(webhook.createdAt).toISOString() })));
      const rows = webhooks.map((webhook) => [
        webhook.name,
        webhook.events.join(','),
        webhook.pattern,
        webhook.allowPrivate ? 'yes' : '',
        webhook.url,
      ]);
      for (const line of formatTable(['NAME', 'EVENTS', 'PATTERN', 'PRIVATE', 'URL'], rows)) out.line(line);
    },
  },
  {
    name: 'webhook remove',
    changes: true,
    args: ['<name>'],
    options: [],
    summary: 'remove a webhook and its secret',
    async run({ args, clients, out }) {
      const name = checkWebhookName(args[0]);
      if (!(await clients.webhookStore().remove(name))) throw new AdminError(`no webhook ${name}`);
      await (await secretsOf(clients)).remove(name);
      out.line(`Removed webhook ${name}.`);
    },
  },
  {
    name: 'webhook test',
    changes: false,
    args: ['<name>'],
    options: ['json'],
    optionsUsage: '[--json]',
    summary: 'send a signed ping (registry.ping) to the webhook, from here, and show the answer',
    async run({ args, options, clients, out }) {
      const name = checkWebhookName(args[0]);
      const store = clients.webhookStore();
      if (!(await store.get(name))) throw new AdminError(`no webhook ${name}`);
      const noRetries = { schedule: async () => undefined };
      const dispatcher = new WebhookDispatcher(
        store,
        await secretsOf(clients),
        noRetries,
        { source: `urn:registry:${clients.tableName()}`, policy: policyOf(clients), retryDelaysSeconds: [], timeoutMs: TEST_TIMEOUT_MS },
        silentLogger,
      );
      const result = await dispatcher.ping(name);
      if (options.json) return out.json(result);
      const answer = result.statusCode ? `HTTP ${result.statusCode}` : (result.error ?? 'no answer');
      out.line(`Ping to ${name}: ${result.outcome === 'delivered' ? 'delivered' : 'not delivered'} (${answer}, ${result.latencyMs} ms)`);
      if (result.outcome !== 'delivered') throw new AdminError(`the ping to ${name} was not delivered`);
    },
  },
  {
    name: 'webhook deliveries',
    changes: false,
    args: ['<name>'],
    options: ['json'],
    optionsUsage: '[--json]',
    summary: "a webhook's last deliveries, newest first: status, attempts, latency, response code",
    async run({ args, options, clients, out }) {
      const name = checkWebhookName(args[0]);
      // Newest first by when they were last tried (the sort key orders by event time).
      const deliveries = (await clients.webhookStore().listDeliveries(name)).sort((a, b) => b.updatedAt - a.updatedAt);
      const summaries = deliveries.map(({ body: _body, name: _name, key, ...delivery }) => ({
        ...delivery,
        time: key.split('#')[0],
        updatedAt: new Date(delivery.updatedAt).toISOString(),
        ...(delivery.nextAttemptAt ? { nextAttemptAt: new Date(delivery.nextAttemptAt).toISOString() } : {}),
      }));
      if (options.json) return out.json(summaries);
      const rows = summaries.map((delivery) => [
        delivery.time,
        delivery.eventType,
        delivery.status,
        String(delivery.attempts),
        delivery.statusCode ? String(delivery.statusCode) : '',
        delivery.latencyMs !== undefined ? `${delivery.latencyMs} ms` : '',
        delivery.error ?? (delivery.nextAttemptAt ? `next attempt ${String(delivery.nextAttemptAt)}` : ''),
      ]);
      for (const line of formatTable(['TIME', 'EVENT', 'STATUS', 'ATTEMPTS', 'CODE', 'LATENCY', 'NOTE'], rows)) out.line(line);
    },
  },
];

function checkWebhookName(name: string): string {
  if (!WEBHOOK_NAME.test(name)) throw new UsageError(`"${name}" is not a valid webhook name: lowercase letters, digits and -, at most 63`);
  return name;
}

function parseEvents(value: string | undefined): string[] {
  if (!value) throw new UsageError(`--events is required: any of ${EVENT_KINDS.join(',')}`);
  const events = [...new Set(value.split(',').map((part) => part.trim()))];
  const unknown = events.filter((event) => !(EVENT_KINDS as readonly string[]).includes(event));
  if (unknown.length > 0) throw new UsageError(`--events: unknown ${unknown.join(', ')}; expected any of ${EVENT_KINDS.join(',')}`);
  return events;
}

/** Local registries take http and loopback targets; deployed ones https and public addresses only. */
function policyOf(clients: AdminClients): WebhookTargetPolicy {
  return { localTargets: clients.isLocal() };
}

/** Files in the local data dir, or the stack's SSM SecureStrings (by table name, as the dispatcher reads them). */
function secretsOf(clients: AdminClients): Promise<WebhookSecrets> {
  const { dataDir, region } = clients.target;
  return webhookSecrets({
    region: region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    tableName: clients.tableName(),
    events: dataDir ? { pullEvents: false, localTargets: true, secretsDir: join(dataDir, 'webhook-secrets') } : undefined,
  });
}
