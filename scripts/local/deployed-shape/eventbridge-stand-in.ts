import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../../registry/support/logger.js';

/** An entry PutEvents accepted, as the bus received it. */
export interface BusEvent {
  Source: string;
  DetailType: string;
  Detail: Record<string, unknown>;
  EventBusName?: string;
  Time?: number;
}

export interface ScheduledInvocation {
  name: string;
  groupName: string;
  at: Date;
  functionArn: string;
  input: unknown;
}

export interface EventBridgeStandIn {
  /** EVENTBRIDGE_ENDPOINT and SCHEDULER_ENDPOINT (one server answers both APIs). */
  endpoint: string;
  /** What PutEvents accepted, oldest first. */
  busEvents: BusEvent[];
  /** Schedules waiting to run. */
  pendingSchedules(): ScheduledInvocation[];
  /** The next `entries` entries PutEvents is sent fail with InternalFailure, as under throttling. */
  failNextEvents(entries: number): void;
  stop(): Promise<void>;
}

/** PutEvents: at most 10 entries, each at most 256 KB. */
const PUT_EVENTS_LIMIT = 10;
const ENTRY_LIMIT_BYTES = 256 * 1024;

/**
 * EventBridge and EventBridge Scheduler for the deployed shape, the two calls the event
 * dispatcher makes: PutEvents onto the default bus (kept, for tests and the log), and
 * CreateSchedule of a one-time `at()` schedule that invokes a function: at that second the
 * schedule's input is the function's event (as Scheduler sends a Lambda target its `Input`),
 * and the schedule is deleted (ActionAfterCompletion DELETE). A failed invocation is tried
 * again a second later, up to the target's MaximumRetryAttempts. Requests are not
 * authenticated; the group and role must be the ones the CDK creates.
 */
export async function startEventBridgeStandIn(options: {
  host: string;
  /** The schedule group and scheduler role the CDK creates (lib/constructs/events.ts). */
  scheduleGroup: string;
  schedulerRoleArn: string;
  /** Invokes a function by ARN (the Lambda emulator's); throws for an unknown one. */
  invoke: (functionArn: string, event: unknown) => Promise<unknown>;
  logger: Logger;
}): Promise<EventBridgeStandIn> {
  const busEvents: BusEvent[] = [];
  let failing = 0;
  const schedules = new Map<string, { schedule: ScheduledInvocation; timer: NodeJS.Timeout }>();

  const run = async (schedule: ScheduledInvocation, retriesLeft: number): Promise<void> => {
    try {
      await options.invoke(schedule.functionArn, schedule.input);
    } catch (error) {
      options.logger.error('scheduled invocation failed', { schedule: schedule.name, retriesLeft, error: String(error) });
      if (retriesLeft > 0) setTimeout(() => void run(schedule, retriesLeft - 1), 1000).unref();
    }
  };

  const putEvents = (body: { Entries?: { Source?: string; DetailType?: string; Detail?: string; EventBusName?: string; Time?: number }[] }) => {
    const entries = body.Entries ?? [];
    if (entries.length === 0 || entries.length > PUT_EVENTS_LIMIT) {
      return { status: 400, type: 'ValidationException', message: `PutEvents takes 1 to ${PUT_EVENTS_LIMIT} entries, got ${entries.length}` };
    }
    const answers = entries.map((entry) => {
      if (failing > 0) {
        failing--;
        return { ErrorCode: 'InternalFailure', ErrorMessage: 'injected failure' };
      }
      if (entry.EventBusName && entry.EventBusName !== 'default')
        return { ErrorCode: 'ResourceNotFoundException', ErrorMessage: `no bus ${entry.EventBusName}` };
      if (!entry.Source || !entry.DetailType || !entry.Detail)
        return { ErrorCode: 'InvalidArgument', ErrorMessage: 'Source, DetailType and Detail are required' };
      if (Buffer.byteLength(JSON.stringify(entry)) > ENTRY_LIMIT_BYTES) return { ErrorCode: 'InvalidArgument', ErrorMessage: 'entry over 256 KB' };
      let detail: Record<string, unknown>;
      try {
        detail = JSON.parse(entry.Detail) as Record<string, unknown>;
      } catch {
        return { ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail is not valid JSON' };
      }
      busEvents.push({ Source: entry.Source, DetailType: entry.DetailType, Detail: detail, EventBusName: entry.EventBusName, Time: entry.Time });
      return { EventId: randomUUID() };
    });
    return { status: 200, body: { FailedEntryCount: answers.filter((answer) => 'ErrorCode' in answer).length, Entries: answers } };
  };

  const createSchedule = (
    name: string,
    body: {
      GroupName?: string;
      ScheduleExpression?: string;
      ScheduleExpressionTimezone?: string;
      ActionAfterCompletion?: string;
      Target?: { Arn?: string; RoleArn?: string; Input?: string; RetryPolicy?: { MaximumRetryAttempts?: number } };
    },
  ) => {
    const groupName = body.GroupName ?? 'default';
    if (groupName !== options.scheduleGroup)
      return { status: 404, type: 'ResourceNotFoundException', message: `Schedule group ${groupName} does not exist.` };
    if (schedules.has(`${groupName}/${name}`)) return { status: 409, type: 'ConflictException', message: `Schedule ${name} already exists.` };
    const at = /^at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)$/.exec(body.ScheduleExpression ?? '');
    if (!at || (body.ScheduleExpressionTimezone ?? 'UTC') !== 'UTC') {
      return { status: 400, type: 'ValidationException', message: `only at(yyyy-mm-ddThh:mm:ss) in UTC is emulated, got ${body.ScheduleExpression}` };
    }
    const target = body.Target;
    if (!target?.Arn || target.RoleArn !== options.schedulerRoleArn) {
      return { status: 400, type: 'ValidationException', message: 'the target needs a function ARN and the scheduler role' };
    }
    if (body.ActionAfterCompletion !== 'DELETE')
      return { status: 400, type: 'ValidationException', message: 'only ActionAfterCompletion DELETE is emulated' };
    const schedule: ScheduledInvocation = {
      name,
      groupName,
      at: new Date(`${at[1]}Z`),
      functionArn: target.Arn,
      input: target.Input === undefined ? {} : JSON.parse(target.Input),
    };
    const key = `${groupName}/${name}`;
    const timer = setTimeout(
      () => {
        schedules.delete(key);
        void run(schedule, target.RetryPolicy?.MaximumRetryAttempts ?? 185);
      },
      Math.max(0, schedule.at.getTime() - Date.now()),
    );
    timer.unref();
    schedules.set(key, { schedule, timer });
    return { status: 200, body: { ScheduleArn: `arn:aws:scheduler:us-east-1:123456789012:schedule/${key}` } };
  };

  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      let answer: { status: number; body?: unknown; type?: string; message?: string };
      try {
        const body = chunks.length > 0 ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
        const target = request.headers['x-amz-target'];
        const schedulePath = /^\/schedules\/([^/?]+)/.exec(request.url ?? '');
        if (request.method === 'POST' && target === 'AWSEvents.PutEvents') answer = putEvents(body);
        else if (request.method === 'POST' && schedulePath) answer = createSchedule(decodeURIComponent(schedulePath[1]!), body);
        else answer = { status: 400, type: 'UnknownOperationException', message: `not emulated: ${request.method} ${request.url} ${target ?? ''}` };
      } catch (error) {
        answer = { status: 400, type: 'ValidationException', message: String(error) };
      }
      response.statusCode = answer.status;
      response.setHeader('content-type', 'application/json');
      if (answer.type) {
        response.setHeader('x-amzn-errortype', answer.type);
        response.end(JSON.stringify({ __type: answer.type, message: answer.message, Message: answer.message }));
      } else {
        response.end(JSON.stringify(answer.body));
      }
    });
  });
  server.listen(0, options.host);
  await once(server, 'listening');
  return {
    endpoint: `http://${options.host}:${(server.address() as AddressInfo).port}`,
    busEvents,
    pendingSchedules: () => [...schedules.values()].map((entry) => entry.schedule),
    failNextEvents: (entries) => {
      failing = entries;
    },
    async stop() {
      for (const { timer } of schedules.values()) clearTimeout(timer);
      schedules.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
