import { RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { environmentOf } from '../../registry/config/environment.js';
import { AUDIT_PREFIX } from '../../registry/storage/keys.js';
import type { RegistryFunction } from './registry-function.js';

export interface RegistryAuditLogProps {
  readonly registryName: string;
  readonly tableArn: string;
  /** How long records are kept: the table's TTL (AUDIT_RETENTION_DAYS) and this log group's retention. */
  readonly retentionDays: number;
}

/**
 * The audit log (docs/audit-log.md). Records live in the metadata table (`AUDIT#<hour>`
 * partitions, expiring by TTL); the stream dispatcher also copies each one to a log group of its
 * own, kept as long, for CloudWatch Logs Insights, subscriptions and exports:
 *
 * - a dedicated group rather than the dispatcher's: it holds audit records only, with their own
 *   retention (the function logs keep `logRetentionDays`), and access to it can be granted apart;
 * - it is retained when the stack is deleted, as an audit trail should be;
 * - functions that record get `PutItem` on the `AUDIT#` partitions only (a push's and a delete's
 *   record rides their transaction, which the registry function may already write).
 */
export class RegistryAuditLog extends Construct {
  readonly logGroup: logs.LogGroup;

  constructor(
    scope: Construct,
    id: string,
    private readonly props: RegistryAuditLogProps,
  ) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'Group', {
      logGroupName: `/${props.registryName}/audit`,
      retention: props.retentionDays as logs.RetentionDays,
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }

  /** A function that writes audit records (recordsAudit). */
  records(fn: RegistryFunction): void {
    recordsAudit(fn, this.props.tableArn, this.props.retentionDays);
  }

  /** The stream dispatcher: it copies every new record to the log group (audit-forwarder.ts). */
  forwards(fn: RegistryFunction): void {
    addEnvironment(fn, environmentOf({ AUDIT_LOG_GROUP: this.logGroup.logGroupName }));
    this.logGroup.grantWrite(fn.role);
  }
}

/**
 * A function that writes audit records, in the primary or a replica region (whose table replica
 * replicates them): the retention, and PutItem on the `AUDIT#` partitions only.
 */
export function recordsAudit(fn: RegistryFunction, tableArn: string, retentionDays: number): void {
  addEnvironment(fn, environmentOf({ AUDIT_RETENTION_DAYS: retentionDays }));
  fn.addToRolePolicy(
    new iam.PolicyStatement({
      sid: 'AuditRecordsWrite',
      actions: ['dynamodb:PutItem'],
      resources: [tableArn],
      conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`${AUDIT_PREFIX}*`] } },
    }),
  );
}

function addEnvironment(fn: RegistryFunction, variables: Record<string, string>): void {
  for (const [name, value] of Object.entries(variables)) fn.handler.addEnvironment(name, value);
}
