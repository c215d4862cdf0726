import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  actionsOf,
  resourceWithIdPrefix,
  roleStatements,
  statementsBySid,
  synthesizeRegistry,
  type SynthesizedRegistry,
} from './support/synthesize.js';

/** The events and webhooks of the primary stack (lib/constructs/events.ts, docs/events.md). */
describe('RegistryStack events', () => {
  let registry: SynthesizedRegistry;
  let template: Template;

  beforeAll(() => {
    registry = synthesizeRegistry({});
    template = registry.template(registry.stacks.primary);
  }, 120_000);

  it('passes the AwsSolutions checks', () => {
    expect(registry.nagViolations).toEqual([]);
  });

  it('gives the metadata table a stream with old and new images', () => {
    template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
    });
  });

  it('maps the stream to the dispatcher with bisection, item failures, bounded retries and an on-failure queue', () => {
    const mapping = resourceWithIdPrefix(template, 'AWS::Lambda::EventSourceMapping', 'EventsFunction');
    expect(mapping.Properties).toMatchObject({
      StartingPosition: 'TRIM_HORIZON',
      BisectBatchOnFunctionError: true,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      MaximumRecordAgeInSeconds: 86_400,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [expect.stringMatching(/^EventsFailures/), 'Arn'] } } },
    });
    expect(mapping.Properties.EventSourceArn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^MetadataTable/), 'StreamArn'] });
  });

  it('writes the dispatcher the bus, the retry schedule target and its role', () => {
    const fn = resourceWithIdPrefix(template, 'AWS::Lambda::Function', 'EventsFunction');
    const variables = fn.Properties.Environment.Variables;
    expect(variables).toMatchObject({ EVENT_BUS_NAME: 'default', PULL_EVENTS: 'false', WEBHOOK_RETRY_GROUP: 'oci-registry-webhook-retries' });
    expect(variables.WEBHOOK_LOCAL_TARGETS).toBeUndefined();
    expect(variables.WEBHOOK_RETRY_ROLE_ARN).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^EventsSchedulerRole/), 'Arn'] });
    template.hasResourceProperties('AWS::Scheduler::ScheduleGroup', { Name: 'oci-registry-webhook-retries' });
  });

  it('lets the dispatcher put events on the default bus only, schedule retries in its group, and read webhook secrets only', () => {
    const bySid = statementsBySid(roleStatements(template, 'EventsFunction'));
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
    const statements = roleStatements(template, 'EventsSchedulerRole');
    expect(statements).toHaveLength(1);
    expect(actionsOf(...statements)).toEqual(new Set(['lambda:InvokeFunction']));
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Principal: { Service: 'scheduler.amazonaws.com' } })]) },
    });
  });
});
