import { setTimeout as sleep } from 'node:timers/promises';
import type { TransactWriteCommandInput } from '@aws-sdk/lib-dynamodb';

/** One entry of a TransactWriteItems call. */
export type TransactionItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

/**
 * A conditional write kept failing because other requests kept changing the item under it:
 * bounded, so that a request never loops, and answered as "retry shortly" (429).
 */
export class ContendedError extends Error {
  constructor(readonly what: string) {
    super(`${what} kept changing under this request`);
    this.name = 'ContendedError';
  }
}

function cancellationCodes(error: unknown): string[] {
  if ((error as { name?: string } | undefined)?.name !== 'TransactionCanceledException') return [];
  const reasons = (error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons ?? [];
  return reasons.map((reason) => reason.Code ?? 'None');
}

/** Positions of a cancelled transaction's items whose condition failed. */
export function failedConditionIndexes(error: unknown): number[] {
  return cancellationCodes(error).flatMap((code, index) => (code === 'ConditionalCheckFailed' ? [index] : []));
}

/** A write met another transaction on one of its items (a plain write too, not only a transaction). */
function isTransactionConflict(error: unknown): boolean {
  return (
    (error as { name?: string } | undefined)?.name === 'TransactionConflictException' || cancellationCodes(error).includes('TransactionConflict')
  );
}

/** A conditional write was refused: the item is not in the state the write required. */
export function isConditionFailure(error: unknown): boolean {
  return (
    (error as { name?: string } | undefined)?.name === 'ConditionalCheckFailedException' ||
    cancellationCodes(error).includes('ConditionalCheckFailed')
  );
}

/** AWS errors that mean "slow down", including throttling inside a transaction. */
const THROTTLING_ERRORS = new Set([
  'ThrottlingException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'SlowDown',
]);

export function isThrottling(error: unknown): boolean {
  const name = (error as { name?: string } | undefined)?.name;
  return (name !== undefined && THROTTLING_ERRORS.has(name)) || cancellationCodes(error).includes('ThrottlingError');
}

const CONFLICT_ATTEMPTS = 5;

/**
 * Runs a write again when DynamoDB cancels it for a conflict with another transaction on the
 * same items (two pushes of one tag do that); the SDK does not retry those itself. Past a few
 * attempts, ContendedError: the client is told to retry (429), never a 500.
 */
export async function retryingConflicts<T>(write: () => Promise<T>, what = 'the items this request writes'): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (error) {
      if (!isTransactionConflict(error)) throw error;
      if (attempt === CONFLICT_ATTEMPTS) throw new ContendedError(what);
      await sleep(Math.random() * 25 * 2 ** attempt);
    }
  }
}
