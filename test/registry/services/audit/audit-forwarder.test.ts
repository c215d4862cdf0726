/**
 * The audit forwarder (docs/audit-log.md): each new AUDIT item on the table's stream becomes one
 * JSON line in the audit log group, through the app's stream handlers when AUDIT_LOG_GROUP is set.
 */
import { CloudWatchLogsClient, CreateLogStreamCommand, PutLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, expect, it } from 'vitest';
import { createApp } from '../../../../registry/app.js';
import { configFromEnv } from '../../../../registry/config/config.js';
import type { StreamRecord } from '../../../../registry/services/events/stream-record.js';
import { createAwsClients } from '../../../../registry/storage/aws-clients.js';
import { keys } from '../../../../registry/storage/keys.js';
import { silentLogger } from '../../../../registry/support/logger.js';

const logs = mockClient(CloudWatchLogsClient);
afterAll(() => logs.restore());
beforeEach(() => logs.reset());

const time = '2026-12-02T03:04:05.678Z';
const auditItem = {
  ...keys.auditRecord(time, 'r1'),
  id: 'r1',
  time,
  action: 'push',
  subject: 'alice',
  actorKind: 'user',
  repository: 'team-a/app',
  outcome: 'success',
  expiresAt: 1,
};

function streamRecord(eventName: StreamRecord['eventName'], image: Record<string, unknown>): StreamRecord {
  return {
    eventId: `e-${Math.random()}`,
    eventName,
    keys: { PK: image.PK, SK: image.SK },
    newImage: eventName === 'REMOVE' ? undefined : image,
    oldImage: eventName === 'INSERT' ? undefined : image,
    approximateCreationTime: Date.parse(time),
  };
}

function appOf(env: Record<string, string>) {
  const config = configFromEnv({ TABLE_NAME: 't', BUCKET_NAME: 'b', AWS_REGION: 'us-east-1', ...env });
  return createApp(config, createAwsClients(config), silentLogger);
}

function handlersOf(env: Record<string, string>) {
  return appOf(env).streamHandlers();
}

it('writes each new audit record to the audit log group as one JSON line, in one log stream, and ignores everything else', async () => {
  logs.on(CreateLogStreamCommand).resolves({});
  logs.on(PutLogEventsCommand).resolves({});
  const app = appOf({ AUDIT_LOG_GROUP: '/registry/audit' });
  const forwarder = (await app.streamHandlers()).at(-1)!;
  await forwarder(streamRecord('INSERT', auditItem));
  // The dispatcher asks for the handlers on every invocation: the same forwarder, the same log stream.
  await (await app.streamHandlers()).at(-1)!(streamRecord('INSERT', { ...auditItem, ...keys.auditRecord(time, 'r2'), id: 'r2' }));
  await forwarder(streamRecord('REMOVE', auditItem));
  await forwarder(streamRecord('INSERT', { ...keys.tag('team-a/app', 'v1'), digest: 'sha256:x' }));

  expect(logs.commandCalls(CreateLogStreamCommand)).toHaveLength(1);
  const puts = logs.commandCalls(PutLogEventsCommand).map((call) => call.args[0].input);
  expect(puts).toHaveLength(2);
  expect(new Set(puts.map((put) => put.logStreamName)).size).toBe(1);
  expect(puts[0]).toMatchObject({ logGroupName: '/registry/audit', logEvents: [{ timestamp: Date.parse(time) }] });
  expect(JSON.parse(puts[0]!.logEvents![0]!.message!)).toEqual({
    id: 'r1',
    time,
    action: 'push',
    actor: { subject: 'alice', kind: 'user' },
    repository: 'team-a/app',
    outcome: 'success',
  });
});

it('throws when the log group refuses, so that the dispatcher has the record delivered again', async () => {
  logs.on(CreateLogStreamCommand).resolves({});
  logs.on(PutLogEventsCommand).rejects(Object.assign(new Error('throttled'), { name: 'ThrottlingException' }));
  const handlers = await handlersOf({ AUDIT_LOG_GROUP: '/registry/audit' });
  await expect(handlers[handlers.length - 1]!(streamRecord('INSERT', auditItem))).rejects.toThrow('throttled');
});

it('has no forwarder without AUDIT_LOG_GROUP (locally)', async () => {
  expect(await handlersOf({})).toHaveLength(1);
});
