import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { AwsCredentialIdentity } from '@aws-sdk/types';

/**
 * Hands one event to a Lambda function asynchronously (`InvocationType: Event`): Lambda queues
 * it, retries a failed run (the function's `retryAttempts`) and drops it after `maxEventAge`.
 * The pull-through copier is invoked so (services/pull-through/copy-dispatcher.ts).
 */
export class AsyncInvoker {
  constructor(
    private readonly lambda: Pick<LambdaClient, 'send'>,
    private readonly functionName: string,
  ) {}

  static create(functionName: string, options: { region: string; endpoint?: string; credentials?: AwsCredentialIdentity }): AsyncInvoker {
    return new AsyncInvoker(new LambdaClient({ region: options.region, endpoint: options.endpoint, credentials: options.credentials }), functionName);
  }

  async invoke(event: unknown): Promise<void> {
    const { StatusCode, FunctionError } = await this.lambda.send(
      new InvokeCommand({ FunctionName: this.functionName, InvocationType: 'Event', Payload: new TextEncoder().encode(JSON.stringify(event)) }),
    );
    if (StatusCode !== 202 || FunctionError) throw new Error(`invoking ${this.functionName} answered ${StatusCode} ${FunctionError ?? ''}`.trim());
  }
}
