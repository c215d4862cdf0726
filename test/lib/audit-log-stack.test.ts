import { describe, expect, it } from 'vitest';
import { App } from 'aws-cdk-lib';
import { registryOptionsInputFromContext, resolveRegistryOptions } from '../../lib/registry-options.js';
import { actionsOf, resourceWithIdPrefix, roleStatements, statementsBySid, useSynthesizedPrimary } from './support/synthesize.js';

/** The audit log of the primary stack (lib/constructs/audit-log.ts, docs/audit-log.md). */
describe('RegistryStack audit log', () => {
  const synthesized = useSynthesizedPrimary({ auditRetentionDays: 180 });

  it('keeps the audit log group as long as the records, and keeps it when the stack goes', () => {
    const groups = Object.entries(synthesized.template.findResources('AWS::Logs::LogGroup')).filter(([id]) => id.startsWith('AuditLogGroup'));
    expect(groups).toHaveLength(1);
    const [, group] = groups[0]!;
    expect(group.Properties).toMatchObject({ LogGroupName: '/oci-registry/audit', RetentionInDays: 180 });
    expect(group.DeletionPolicy).toBe('Retain');
    expect(group.UpdateReplacePolicy).toBe('Retain');
  });

  it('writes the same retention to every function that records, and the group to the dispatcher', () => {
    for (const prefix of ['RegistryFunction', 'TokenFunction', 'EventsFunction']) {
      const variables = resourceWithIdPrefix(synthesized.template, 'AWS::Lambda::Function', prefix).Properties.Environment.Variables;
      if (prefix !== 'EventsFunction') expect(variables.AUDIT_RETENTION_DAYS, prefix).toBe('180');
      else expect(variables.AUDIT_LOG_GROUP).toEqual({ Ref: expect.stringMatching(/^AuditLogGroup/) });
    }
    expect(
      resourceWithIdPrefix(synthesized.template, 'AWS::Lambda::Function', 'RegistryFunction').Properties.Environment.Variables.AUDIT_LOG_GROUP,
    ).toBeUndefined();
  });

  it('lets the token function put audit records and nothing else in their partitions', () => {
    const bySid = statementsBySid(roleStatements(synthesized.template, 'TokenFunction'));
    expect(actionsOf(bySid.AuditRecordsWrite!)).toEqual(new Set(['dynamodb:PutItem']));
    expect(bySid.AuditRecordsWrite!.Condition).toEqual({ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['AUDIT#*'] } });
  });

  it('lets the dispatcher write to the audit log group only', () => {
    const writes = roleStatements(synthesized.template, 'EventsFunction').filter((statement) => actionsOf(statement).has('logs:PutLogEvents'));
    const groups = writes.map((statement) => JSON.stringify(statement.Resource));
    expect(groups.some((resource) => resource.includes('AuditLogGroup'))).toBe(true);
    expect(
      roleStatements(synthesized.template, 'RegistryFunction').some((statement) => JSON.stringify(statement.Resource).includes('AuditLogGroup')),
    ).toBe(false);
  });

  it('takes 90 days by default and refuses a retention CloudWatch does not offer', () => {
    expect(resolveRegistryOptions({}).auditRetentionDays).toBe(90);
    expect(() => resolveRegistryOptions({ auditRetentionDays: 100 })).toThrow(/auditRetentionDays must be one of .*90, 120/);
    // From cdk.json or `-c auditRetentionDays=365`.
    expect(registryOptionsInputFromContext(new App({ context: { auditRetentionDays: '365' } }).node).auditRetentionDays).toBe(365);
  });
});
