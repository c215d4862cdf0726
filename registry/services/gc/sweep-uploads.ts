import { DeleteCommand } from '@aws-sdk/lib-dynamodb';
import { isConditionFailure } from '../../storage/dynamo-errors.js';
import { keys, objectKeys } from '../../storage/keys.js';
import { forEachConcurrently } from '../../support/concurrency.js';
import type { SweepContext } from './context.js';
import type { MarkResult, SessionFacts } from './mark.js';

/**
 * Ends upload sessions that expired more than the grace period ago (a request accepted just
 * before expiry may still be running; none runs longer than the grace period): the item goes
 * first, under the condition that it was not renewed since the scan, then its S3 multipart
 * upload is aborted and its tail deleted. Sessions DynamoDB's TTL removed first are not seen
 * here: their tails are swept as orphans, their multipart uploads by the bucket's
 * abort-incomplete-multipart-uploads lifecycle rule (s3rver cannot list multipart uploads, and
 * S3's own rule does it without listing: GC aborts only the uploads sessions name).
 * Answers the ids of the sessions it ended.
 */
export async function sweepSessions(context: SweepContext, marked: MarkResult): Promise<{ stopped: boolean; ended: Set<string> }> {
  const ended = new Set<string>();
  context.report.sessionsScanned = marked.sessions.size;
  const expired = [...marked.sessions.values()].filter((session) => session.expiresAt * 1000 < context.t0 - context.graceMs);
  const { stopped } = await forEachConcurrently(
    expired,
    context.concurrency,
    async (session) => {
      if (context.dryRun || (await endSession(context, session))) {
        ended.add(session.id);
        context.report.sessionsExpired++;
      }
    },
    context.stop,
  );
  return { stopped, ended };
}

async function endSession(context: SweepContext, session: SessionFacts): Promise<boolean> {
  try {
    await context.dynamo.send(
      new DeleteCommand({
        TableName: context.tableName,
        Key: keys.uploadSession(session.id),
        // Gone already (TTL) is fine; renewed by a request since the scan is not.
        ConditionExpression: 'attribute_not_exists(PK) OR expiresAt = :seen',
        ExpressionAttributeValues: { ':seen': session.expiresAt },
      }),
    );
  } catch (error) {
    if (!isConditionFailure(error)) context.failed('end session', { session: session.id }, error);
    return false;
  }
  try {
    if (session.multipartUploadId && (await context.bucket.abortMultipart(objectKeys.blobData(session.id), session.multipartUploadId))) {
      context.report.multipartUploadsAborted++;
    }
    if (session.tailKey) await context.bucket.delete(session.tailKey);
  } catch (error) {
    // The tail is swept as an orphan next time; the lifecycle rule aborts the multipart upload.
    context.failed('clean session objects', { session: session.id }, error);
  }
  return true;
}
