import { CreateScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';

export interface ScheduleTarget {
  /** The function that runs the retry (the event dispatcher). */
  functionArn: string;
  /** The role EventBridge Scheduler assumes to invoke it. */
  roleArn: string;
  /** The schedule group holding the retries. */
  groupName: string;
  /** A local stand-in's endpoint (the deployed shape's scheduler); unset in AWS. */
  endpoint?: string;
}

/**
 * Webhook retries as EventBridge Scheduler one-time schedules (`at(...)`), deleted by the
 * scheduler once they ran: nothing runs, and nothing costs, while no retry waits.
 */
export class RetrySchedules {
  constructor(
    private readonly client: Pick<SchedulerClient, 'send'>,
    private readonly target: ScheduleTarget,
  ) {}

  static inRegion(region: string, target: ScheduleTarget): RetrySchedules {
    return new RetrySchedules(new SchedulerClient({ region, endpoint: target.endpoint }), target);
  }

  /** `name` must be unique per retry (at most 64 characters of [0-9a-zA-Z-_.]); `input` reaches the function as its event. */
  async create(name: string, at: Date, input: unknown): Promise<void> {
    await this.client.send(
      new CreateScheduleCommand({
        Name: name,
        GroupName: this.target.groupName,
        // Whole seconds, UTC, without a zone: the form at() takes.
        ScheduleExpression: `at(${at.toISOString().slice(0, 19)})`,
        ScheduleExpressionTimezone: 'UTC',
        FlexibleTimeWindow: { Mode: 'OFF' },
        ActionAfterCompletion: 'DELETE',
        Target: {
          Arn: this.target.functionArn,
          RoleArn: this.target.roleArn,
          Input: JSON.stringify(input),
          // The function's own failures are retried by the delivery's schedule, not by the scheduler's.
          RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 3600 },
        },
      }),
    );
  }
}
