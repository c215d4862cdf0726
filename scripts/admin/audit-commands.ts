/**
 * `audit list`: who did what, from the audit records in the registry's table (docs/audit-log.md),
 * and the recording of the admin CLIs' own changes there.
 */
import { hostname, userInfo } from 'node:os';
import type { AuditActor, AuditRecord } from '../../registry/model/audit/audit-record.js';
import type { AuditLog } from '../../registry/services/audit/audit-log.js';
import { formatTable, type Command } from './command.js';
import { UsageError } from './errors.js';

/** What `audit list` shows without `--since`. */
const DEFAULT_SINCE = '24h';

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export const auditCommands: Command[] = [
  {
    name: 'audit list',
    changes: false,
    args: [],
    options: ['since', 'until', 'repository', 'user', 'action', 'json'],
    optionsUsage: '[--since 1h|ISO] [--until 1h|ISO] [--repository R] [--user U] [--action A] [--json]',
    summary: 'show the audit log: logins, refusals, pushes, deletes and admin changes, oldest first',
    details: [
      `--since and --until take a time ago (30m, 1h, 7d) or an ISO time; --since defaults to ${DEFAULT_SINCE}, --until to now.`,
      '--user is a login name, robot$<name> or an operator; --action matches the action and those under it',
      '(delete finds delete.tag, delete.manifest and delete.blob). --json writes one JSON record per line.',
    ].join('\n'),
    async run({ options, clients, out }) {
      const now = Date.now();
      const since = timeOf(options.since ?? DEFAULT_SINCE, now, '--since');
      const until = options.until === undefined ? new Date(now) : timeOf(options.until, now, '--until');
      if (since > until) throw new UsageError('--since is after --until');
      const records = clients.auditLog().list({ since, until, repository: options.repository, subject: options.user, action: options.action });
      if (options.json) {
        for await (const record of records) out.line(JSON.stringify(record));
        return;
      }
      const rows: string[][] = [];
      for await (const record of records) rows.push(rowOf(record));
      if (rows.length === 0) return out.line(`No audit records from ${since.toISOString()} to ${until.toISOString()}.`);
      for (const line of formatTable(['TIME', 'ACTOR', 'ACTION', 'REPOSITORY', 'REFERENCE', 'SOURCE', 'OUTCOME'], rows)) out.line(line);
    },
  },
];

function rowOf(record: AuditRecord): string[] {
  const reference = record.reference ?? record.digest ?? (record.detail?.args || '');
  const outcome = record.outcome === 'success' ? 'ok' : `refused ${record.reason ?? ''}`.trim();
  return [
    record.time,
    `${record.actor.subject} (${record.actor.kind})`,
    record.action,
    record.repository ?? '',
    reference,
    record.sourceIp ?? '',
    outcome,
  ];
}

/** `1h` ago, or an ISO 8601 time. */
export function timeOf(value: string, now: number, option: string): Date {
  const ago = /^(\d+)([smhd])$/.exec(value);
  if (ago) return new Date(now - Number(ago[1]) * UNIT_MS[ago[2]!]!);
  const time = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(time.getTime())) {
    throw new UsageError(`${option} takes a time ago (30m, 1h, 7d) or an ISO time such as 2026-01-31T12:00:00Z, not "${value}"`);
  }
  return time;
}

/**
 * Who runs an admin command. The AWS caller identity (STS GetCallerIdentity) would name the IAM
 * principal, but @aws-sdk/client-sts is not a dependency: the operator is the OS user, with the
 * AWS profile when one is set (docs/audit-log.md).
 */
export function adminActor(): AuditActor {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = process.env.USER ?? 'unknown';
  }
  return { subject: `${user}@${hostname()}`, kind: 'admin' };
}

/**
 * Records one admin change: `user create alice` becomes action `user.create` with the positional
 * arguments (names, patterns, actions: never a password, which comes by option or stdin).
 */
export async function recordAdminChange(audit: AuditLog, commandName: string, args: readonly string[], error?: unknown): Promise<void> {
  const profile = process.env.AWS_PROFILE;
  await audit.record({
    action: commandName.replace(/ /g, '.'),
    actor: adminActor(),
    outcome: error === undefined ? 'success' : 'refused',
    reason: error === undefined ? undefined : error instanceof Error ? error.name : 'error',
    detail: { args: args.join(' '), ...(profile ? { awsProfile: profile } : {}) },
  });
}
