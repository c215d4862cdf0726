import { Arn, Duration, Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { environmentOf } from '../../registry/config/environment.js';
import { DELETION_PREFIX, PULL_COUNT_PREFIX, WEBHOOK_DELIVERY_PREFIX, WEBHOOK_PARTITION } from '../../registry/storage/keys.js';
import { eventDispatcherEnvironment } from '../event-dispatcher-environment.js';
import { acknowledgeNag, acknowledgeWildcardResources } from '../nag-acknowledgements.js';
import { kmsKeysArn } from './auth-permissions.js';
import { RegistryFunction } from './registry-function.js';

export interface RegistryEventsProps {
  readonly registryName: string;
  /** Handler file of the dispatcher (functions/event-dispatcher.ts). */
  readonly entry: string;
  readonly table: dynamodb.TableV2;
  readonly bucketName: string;
  /** The registry's public URL: the CloudEvents `source` of webhook deliveries. */
  readonly publicBaseUrl: string;
  readonly logRetentionDays: number;
  /** Count pulls and emit them as events (PULL_EVENTS). */
  readonly pullEvents?: boolean;
}

/**
 * Events and webhooks of the primary region (docs/events.md): the metadata table's stream
 * drives one dispatcher function, which sends each committed change to EventBridge's default
 * bus and to the webhooks that subscribe to it. Replica regions get none: their global-table
 * replicas' streams carry the same changes again.
 *
 * - The event source mapping retries a failing batch, bisects it to find the record, and sends
 *   what still fails after a day of retries to a queue (the on-failure destination), so that no
 *   change is dropped silently; records are handled in order per shard.
 * - Webhook retries are EventBridge Scheduler one-time schedules that invoke the dispatcher and
 *   delete themselves: nothing runs while no retry waits.
 */
export class RegistryEvents extends Construct {
  readonly function: RegistryFunction;
  readonly failures: sqs.Queue;
  readonly retryGroup: scheduler.CfnScheduleGroup;
  readonly schedulerRole: iam.Role;

  constructor(scope: Construct, id: string, props: RegistryEventsProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const tableName = props.table.tableName;

    this.retryGroup = new scheduler.CfnScheduleGroup(this, 'RetryGroup', { name: `${props.registryName}-webhook-retries` });
    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': stack.account } } }),
      description: `${props.registryName}: EventBridge Scheduler runs webhook retries`,
    });

    this.function = new RegistryFunction(this, 'Function', {
      entry: props.entry,
      description: `${props.registryName}: registry events to EventBridge and webhooks, from the table's stream`,
      memorySizeMb: 512,
      timeout: Duration.minutes(2),
      logRetentionDays: props.logRetentionDays,
      environment: environmentOf(
        eventDispatcherEnvironment({
          tableName,
          bucketName: props.bucketName,
          publicBaseUrl: props.publicBaseUrl,
          pullEvents: props.pullEvents ?? false,
          retryRoleArn: this.schedulerRole.roleArn,
          retryGroup: this.retryGroup.name!,
        }),
      ),
    });
    // The schedules invoke this same function, which learns its ARN from its invocation context
    // (naming it here would make the function depend on itself).
    this.schedulerRole.addToPolicy(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [this.function.handler.functionArn] }));

    this.failures = new sqs.Queue(this, 'Failures', {
      retentionPeriod: Duration.days(14),
      enforceSSL: true,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
    });
    acknowledgeNag(
      this.failures,
      'AwsSolutions-SQS3',
      'This queue is itself the dead-letter destination of the stream mapping: it holds stream records that failed for a day.',
    );

    this.function.handler.addEventSource(
      new sources.DynamoEventSource(props.table, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: 100,
        maxBatchingWindow: Duration.seconds(1),
        bisectBatchOnError: true,
        reportBatchItemFailures: true,
        retryAttempts: 1000,
        maxRecordAge: Duration.days(1),
        onFailure: new sources.SqsDlq(this.failures),
      }),
    );

    const retryScheduleArn = Arn.format({ service: 'scheduler', resource: 'schedule', resourceName: `${this.retryGroup.name}/*` }, stack);
    const webhookSecretArn = Arn.format({ service: 'ssm', resource: 'parameter', resourceName: `${tableName}/webhooks/*` }, stack);
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'WebhooksAndPullCounts',
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query'],
        resources: [props.table.tableArn],
        conditions: {
          // Deletion markers are only read (why and by whom a manifest or tag went).
          'ForAllValues:StringLike': {
            'dynamodb:LeadingKeys': [WEBHOOK_PARTITION, `${WEBHOOK_DELIVERY_PREFIX}*`, `${PULL_COUNT_PREFIX}*`, `${DELETION_PREFIX}*`],
          },
        },
      }),
      new iam.PolicyStatement({
        sid: 'EventsToTheDefaultBus',
        actions: ['events:PutEvents'],
        resources: [Arn.format({ service: 'events', resource: 'event-bus', resourceName: 'default' }, stack)],
      }),
      new iam.PolicyStatement({ sid: 'WebhookRetrySchedules', actions: ['scheduler:CreateSchedule'], resources: [retryScheduleArn] }),
      new iam.PolicyStatement({ sid: 'WebhookRetryRole', actions: ['iam:PassRole'], resources: [this.schedulerRole.roleArn] }),
      new iam.PolicyStatement({ sid: 'WebhookSecretsRead', actions: ['ssm:GetParameter'], resources: [webhookSecretArn] }),
      new iam.PolicyStatement({
        sid: 'WebhookSecretsDecrypt',
        actions: ['kms:Decrypt'],
        resources: [kmsKeysArn(this)],
        conditions: {
          StringEquals: { 'kms:ViaService': `ssm.${stack.region}.${stack.urlSuffix}` },
          StringLike: { 'kms:EncryptionContext:PARAMETER_ARN': webhookSecretArn },
        },
      }),
    );
    acknowledgeWildcardResources(
      this.function.role,
      [retryScheduleArn, webhookSecretArn, kmsKeysArn(this)],
      'Webhook retry schedules and webhook secrets are named per delivery and per webhook at run time: the grants are limited to the retry schedule group, to the /<table>/webhooks/ parameters, and to Parameter Store decrypting those parameters (kms:ViaService, kms:EncryptionContext:PARAMETER_ARN).',
    );
  }
}
