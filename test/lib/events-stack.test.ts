import { Match } from 'aws-cdk-lib/assertions';
import { App } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { registryOptionsInputFromContext } from '../../lib/registry-options.js';
import { actionsOf, resourceWithIdPrefix, roleStatements, statementsBySid, synthesizeRegistry, useSynthesizedPrimary } from './support/synthesize.js';

/** The events and webhooks of the primary stack (lib/constructs/events.ts, docs/events.md). */
describe('RegistryStack events', () => {
  const synthesized = useSynthesizedPrimary({});

  it('gives the metadata table a stream with old and new images', () => {
    synthesized.template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
    });
  });

  it('maps the stream to the dispatcher with bisection, item failures, bounded retries and an on-failure queue', () => {
    const mapping = resourceWithIdPrefix(synthesized.template, 'AWS::Lambda::EventSourceMapping', 'EventsFunction');
    expect(mapping.Properties).toMatchObject({
      StartingPosition: 'TRIM_HORIZON',
      BisectBatchOnFunctionError: true,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      MaximumRecordAgeInSeconds: 86_400,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [expect.stringMatching(/^EventsFailures/), 'Arn'] } } },
    });
    expect(mapping.Properties.EventSourceArn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^MetadataTable/), 'StreamArn'] });
  });

  it('leaves pull events and audited pulls off by default', () => {
    const variables = resourceWithIdPrefix(synthesized.template, 'AWS::Lambda::Function', 'RegistryFunction').Properties.Environment.Variables;
    expect(variables).toMatchObject({ PULL_EVENTS: 'false', AUDIT_PULLS: 'false' });
  });

  it('writes the dispatcher the bus, the retry schedule target and its role', () => {
    const fn = resourceWithIdPrefix(synthesized.template, 'AWS::Lambda::Function', 'EventsFunction');
    const variables = fn.Properties.Environment.Variables;
    expect(variables).toMatchObject({ EVENT_BUS_NAME: 'default', PULL_EVENTS: 'false', WEBHOOK_RETRY_GROUP: 'oci-registry-webhook-retries' });
    expect(variables.WEBHOOK_LOCAL_TARGETS).toBeUndefined();
    expect(variables.WEBHOOK_RETRY_ROLE_ARN).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^EventsSchedulerRole/), 'Arn'] });
    synthesized.template.hasResourceProperties('AWS::Scheduler::ScheduleGroup', { Name: 'oci-registry-webhook-retries' });
  });

  it('lets the dispatcher put events on the default bus only, schedule retries in its group, and read webhook secrets only', () => {
    const bySid = statementsBySid(roleStatements(synthesized.template, 'EventsFunction'));
    expect(actionsOf(bySid.EventsToTheDefaultBus!)).toEqual(new Set(['events:PutEvents']));
    expect(JSON.stringify(bySid.EventsToTheDefaultBus!.Resource)).toContain(':event-bus/default');
    expect(actionsOf(bySid.WebhookRetrySchedules!)).toEqual(new Set(['scheduler:CreateSchedule']));
    expect(JSON.stringify(bySid.WebhookRetrySchedules!.Resource)).toContain(':schedule/oci-registry-webhook-retries/*');
    expect(actionsOf(bySid.WebhookSecretsRead!)).toEqual(new Set(['ssm:GetParameter']));
    expect(JSON.stringify(bySid.WebhookSecretsRead!.Resource)).toContain('/webhooks/*');
    expect(bySid.WebhooksAndPullCounts!.Condition).toEqual({
      'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['WEBHOOK', 'WEBHOOK#*', 'PULLS#*', 'DELETED#*'] },
    });
    const all = [...actionsOf(...Object.values(bySid))];
    expect(all.filter((action) => action.startsWith('s3:') || action === 'dynamodb:DeleteItem' || action === 'ssm:PutParameter')).toEqual([]);
  });

  it('lets the scheduler role invoke the dispatcher and nothing else', () => {
    const statements = roleStatements(synthesized.template, 'EventsSchedulerRole');
    expect(statements).toHaveLength(1);
    expect(actionsOf(...statements)).toEqual(new Set(['lambda:InvokeFunction']));
    synthesized.template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Principal: { Service: 'scheduler.amazonaws.com' } })]) },
    });
  });
});

/** `-c pullEvents=true -c auditPulls=true` (docs/configuration.md): the options reach the functions that act on them. */
describe('RegistryStack with pull events and audited pulls', () => {
  it('counts pulls in the registry function, emits them from the dispatcher and audits pulls in every region', () => {
    const registry = synthesizeRegistry(
      registryOptionsInputFromContext(new App({ context: { pullEvents: 'true', auditPulls: 'true', replicaRegions: 'eu-west-1' } }).node),
    );
    const primary = registry.template(registry.stacks.primary);
    const variables = (prefix: string, template = primary) =>
      resourceWithIdPrefix(template, 'AWS::Lambda::Function', prefix).Properties.Environment.Variables;
    expect(variables('RegistryFunction')).toMatchObject({ PULL_EVENTS: 'true', AUDIT_PULLS: 'true' });
    expect(variables('EventsFunction')).toMatchObject({ PULL_EVENTS: 'true' });
    // A replica serves pulls and records them; its counters would be a second stream's, so no pull events there.
    const replica = variables('RegistryFunction', registry.template(registry.stacks.replicaApis[0]!));
    expect(replica).toMatchObject({ AUDIT_PULLS: 'true' });
    expect(replica.PULL_EVENTS).toBeUndefined();
  }, 120_000);
});
