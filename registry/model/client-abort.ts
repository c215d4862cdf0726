/**
 * A request body that stopped for the client's reasons: the connection broke, or nothing
 * arrived for the idle timeout. Not the registry's failure: it is answered (when it still can
 * be) and logged as an abort, never as a 500, and it does not count in the Errors metric.
 */
export class ClientAbort extends Error {
  constructor(
    readonly reason: 'disconnected' | 'idle',
    options?: { cause?: unknown },
  ) {
    super(reason === 'idle' ? 'the request body stopped arriving' : 'the client closed the connection', options);
    this.name = 'ClientAbort';
  }

  /** 408 for a stalled body (the client may still read it); 499, never sent, for a broken connection (nginx's "client closed request"). */
  get status(): number {
    return this.reason === 'idle' ? 408 : 499;
  }
}
