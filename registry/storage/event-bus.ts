import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';

/** PutEvents takes at most 10 entries a call. */
const PUT_EVENTS_LIMIT = 10;

export interface BusEntry {
  Source: string;
  DetailType: string;
  Detail: string;
  Time: Date;
  EventBusName?: string;
}

/** Sends events to an EventBridge bus; throws when any entry was not accepted, so that the caller's record is handed over again. */
export class EventBus {
  constructor(private readonly client: Pick<EventBridgeClient, 'send'>) {}

  /** `endpoint`: a local stand-in's (the deployed shape's); unset in AWS. */
  static inRegion(region: string, endpoint?: string): EventBus {
    return new EventBus(new EventBridgeClient({ region, endpoint }));
  }

  async put(entries: readonly BusEntry[]): Promise<void> {
    for (let start = 0; start < entries.length; start += PUT_EVENTS_LIMIT) {
      const batch = entries.slice(start, start + PUT_EVENTS_LIMIT);
      const answer = await this.client.send(new PutEventsCommand({ Entries: [...batch] }));
      if ((answer.FailedEntryCount ?? 0) > 0) {
        const codes = [...new Set((answer.Entries ?? []).map((entry) => entry.ErrorCode).filter(Boolean))];
        throw new Error(`EventBridge refused ${answer.FailedEntryCount} of ${batch.length} events (${codes.join(', ')})`);
      }
    }
  }
}
