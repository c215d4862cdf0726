import { randomUUID } from 'node:crypto';
import { CloudWatchLogsClient, CreateLogStreamCommand, PutLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';

/**
 * The audit log group in CloudWatch Logs (docs/audit-log.md): one log stream per execution
 * environment, created on first use, one event per audit record.
 */
export class AuditLogGroup {
  private stream: Promise<string> | undefined;

  constructor(
    private readonly logs: CloudWatchLogsClient,
    readonly logGroupName: string,
  ) {}

  async put(timestamp: number, message: string): Promise<void> {
    const logStreamName = await this.streamName();
    await this.logs.send(new PutLogEventsCommand({ logGroupName: this.logGroupName, logStreamName, logEvents: [{ timestamp, message }] }));
  }

  private streamName(): Promise<string> {
    this.stream ??= (async () => {
      const name = `${new Date().toISOString().slice(0, 10)}/${randomUUID()}`;
      try {
        await this.logs.send(new CreateLogStreamCommand({ logGroupName: this.logGroupName, logStreamName: name }));
      } catch (error) {
        this.stream = undefined;
        throw error;
      }
      return name;
    })();
    return this.stream;
  }
}

export function auditLogGroupFor(region: string, logGroupName: string): AuditLogGroup {
  return new AuditLogGroup(new CloudWatchLogsClient({ region }), logGroupName);
}
