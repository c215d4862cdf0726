import { randomUUID } from 'node:crypto';
import { AUDIT_DEFAULTS, type AuditConfig, type RegistryConfig } from '../../config/config.js';
import { boundedEntry, type AuditActor, type AuditEntry, type AuditRecord } from '../../model/audit/audit-record.js';
import { ROBOT_PREFIX } from '../../model/auth/account-names.js';
import { AuditStore, type AuditQuery } from '../../storage/audit-store.js';
import type { AwsClients } from '../../storage/aws-clients.js';
import type { TransactionItem } from '../../storage/dynamo-errors.js';
import { jsonLogger, type Logger } from '../../support/logger.js';
import { ANONYMOUS_SUBJECT } from '../auth/registry-tokens.js';

const DAY_SECONDS = 24 * 3600;

/**
 * The audit log (docs/audit-log.md). Anything security-relevant records itself with one line:
 *
 *     await audit.record({ action: 'webhook.add', actor, outcome: 'success', detail: { name } });
 *
 * `record` never throws and costs one PutItem: a record that cannot be written is logged as an
 * error and the action it describes goes on. A change that is one transaction takes `write`
 * instead, so that its record commits with it (a push: docs/audit-log.md, "Why in the push's
 * transaction").
 */
export class AuditLog {
  readonly settings: AuditConfig;

  constructor(
    private readonly store: AuditStore,
    settings: Partial<AuditConfig> = {},
    private readonly logger: Logger = jsonLogger(),
  ) {
    this.settings = { ...AUDIT_DEFAULTS, ...settings };
  }

  async record(entry: AuditEntry): Promise<void> {
    const record = this.newRecord(entry);
    try {
      await this.store.put(record, this.expiresAt());
    } catch (error) {
      this.logger.error('audit record not written', { action: record.action, id: record.id, error: error instanceof Error ? error.name : 'unknown' });
    }
  }

  /** The record as one more item of the transaction that makes the change. */
  write(entry: AuditEntry): TransactionItem {
    return this.store.putWrite(this.newRecord(entry), this.expiresAt());
  }

  list(query: AuditQuery): AsyncGenerator<AuditRecord> {
    return this.store.query(query);
  }

  private newRecord(entry: AuditEntry): AuditRecord {
    return { id: randomUUID(), time: new Date().toISOString(), ...boundedEntry(entry) };
  }

  private expiresAt(): number {
    return Math.floor(Date.now() / 1000) + this.settings.retentionDays * DAY_SECONDS;
  }
}

/** The actor a registry token's subject names: `robot$<name>` a robot, no subject an anonymous caller. */
export function actorOf(subject: string | undefined): AuditActor {
  if (subject === undefined || subject === ANONYMOUS_SUBJECT) return { subject: ANONYMOUS_SUBJECT, kind: 'anonymous' };
  return { subject, kind: subject.startsWith(ROBOT_PREFIX) ? 'robot' : 'user' };
}

/** The audit log over the registry's table: the registry's services and the token endpoint each build theirs with this. */
export function auditLogFor(config: Pick<RegistryConfig, 'tableName' | 'audit'>, clients: Pick<AwsClients, 'dynamo'>, logger?: Logger): AuditLog {
  return new AuditLog(new AuditStore(clients.dynamo, config.tableName), config.audit, logger);
}
