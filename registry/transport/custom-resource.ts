import type { CloudFormationCustomResourceEvent } from 'aws-lambda';

/** What a custom resource tells CloudFormation, besides the ids it echoes from the event. */
export interface CustomResourceAnswer {
  Status: 'SUCCESS' | 'FAILED';
  /** Shown in the stack's events on failure. */
  Reason?: string;
  PhysicalResourceId: string;
  /** Fn::GetAtt attributes, at most 4 KB in all. */
  Data?: Record<string, string>;
}

/** Answers CloudFormation through the presigned ResponseURL. */
export async function sendResponse(event: CloudFormationCustomResourceEvent, answer: CustomResourceAnswer): Promise<void> {
  const body = JSON.stringify({ ...answer, StackId: event.StackId, RequestId: event.RequestId, LogicalResourceId: event.LogicalResourceId });
  // The URL's signature covers no Content-Type: send none, as cfn-response does.
  const response = await fetch(event.ResponseURL, { method: 'PUT', body, headers: { 'content-type': '' } });
  if (!response.ok) throw new Error(`CloudFormation refused the response: HTTP ${response.status}`);
}

/**
 * A plain Lambda-backed custom resource: runs `work` and answers CloudFormation itself, on every
 * path, failures included, so that a stack never waits an hour for a handler that crashed.
 * Logs one line at the start and one at the end, never the properties (they may name secrets).
 */
export async function answerCustomResource(
  event: CloudFormationCustomResourceEvent,
  name: string,
  work: () => Promise<{ physicalResourceId: string; data: Record<string, string> }>,
  physicalResourceIdOnFailure: () => string,
): Promise<void> {
  const summary = { requestType: event.RequestType, logicalResourceId: event.LogicalResourceId, stackId: event.StackId };
  console.log(JSON.stringify({ level: 'info', message: `${name} request`, ...summary }));
  try {
    const result = await work();
    console.log(JSON.stringify({ level: 'info', message: `${name} done`, ...summary, physicalResourceId: result.physicalResourceId }));
    await sendResponse(event, { Status: 'SUCCESS', PhysicalResourceId: result.physicalResourceId, Data: result.data });
  } catch (error) {
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    console.log(JSON.stringify({ level: 'error', message: `${name} failed`, ...summary, error: reason }));
    await sendResponse(event, { Status: 'FAILED', Reason: reason.slice(0, 1000), PhysicalResourceId: physicalResourceIdOnFailure() });
  }
}
