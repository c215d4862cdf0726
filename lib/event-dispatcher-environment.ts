import type { EnvironmentValues } from '../registry/config/environment.js';

/**
 * The event dispatcher's environment (functions/event-dispatcher.ts, docs/events.md), one
 * definition for the CDK construct (lib/constructs/events.ts) and the local deployed shape
 * (scripts/local/deployed-shape/), so that the shape runs the bundle with what AWS gives it.
 */
export function eventDispatcherEnvironment(values: {
  tableName: string;
  bucketName: string;
  /** The registry's public URL: the CloudEvents `source` of webhook deliveries. */
  publicBaseUrl: string;
  pullEvents: boolean;
  /** The role EventBridge Scheduler assumes to invoke the dispatcher for a webhook retry. */
  retryRoleArn: string;
  retryGroup: string;
}): EnvironmentValues {
  return {
    TABLE_NAME: values.tableName,
    BUCKET_NAME: values.bucketName,
    PUBLIC_BASE_URL: values.publicBaseUrl,
    EVENT_BUS_NAME: 'default',
    PULL_EVENTS: values.pullEvents,
    WEBHOOK_RETRY_ROLE_ARN: values.retryRoleArn,
    WEBHOOK_RETRY_GROUP: values.retryGroup,
  };
}
