import { DeleteCommand, GetCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { isConditionFailure } from '../../storage/dynamo-errors.js';
import { keys } from '../../storage/keys.js';
import { CLAIMABLE_BLOB } from '../../storage/blob-index.js';
import { forEachConcurrently } from '../../support/concurrency.js';
import type { SweepContext } from './context.js';
import { digestOfKey } from './digest-keys.js';
import type { BlobFacts, MarkResult } from './mark.js';

/** Links of one blob are deleted this many at a time (a popular blob may be linked in thousands of repositories). */
const LINK_CONCURRENCY = 8;

interface Doomed {
  digest: string;
  facts: BlobFacts;
}

/**
 * Sweeps the blob records the mark found unreferenced and older than the grace period: claim,
 * then delete their links, their object and the record. Also finishes claims left by runs that
 * died. Answers whether the deadline stopped it.
 */
export async function sweepBlobs(context: SweepContext, marked: MarkResult): Promise<{ stopped: boolean }> {
  const { report, logger } = context;
  let candidates = 0;
  let staleClaims = 0;
  for (const facts of marked.blobs.values()) {
    if (facts.objectKey === undefined) {
      if (facts.referenced) report.referencesWithoutRecord++;
    } else if (facts.referenced) {
      report.blobsLive++;
      if (facts.claimedBy !== undefined) {
        logger.error('gc found a claimed blob that a manifest references', { runId: context.runId, claimedBy: facts.claimedBy });
      }
    } else if (isStaleClaim(context, facts)) {
      staleClaims++;
    } else if (isCandidate(context, facts)) {
      candidates++;
    } else if (facts.claimedBy === undefined) {
      report.blobsInGrace++;
    }
  }
  report.blobCandidates = candidates;
  if (report.referencesWithoutRecord > 0) {
    logger.warn('gc found manifests naming blobs without a record', { runId: context.runId, digests: report.referencesWithoutRecord });
  }
  if (marked.manifestsWithoutBlobList > 0) {
    // Without the reference list of every manifest the roots are unknown: sweeping could break an image.
    logger.error('gc found manifests without a blobDigests list: no blob is swept', {
      runId: context.runId,
      manifests: marked.manifestsWithoutBlobList,
    });
    return { stopped: false };
  }
  logger.info('gc blob sweep', { runId: context.runId, candidates, staleClaims });

  const staleLinks = await forEachConcurrently(
    doomed(marked, (facts) => facts.mayHaveStaleLinks()),
    context.concurrency,
    (blob) => deleteStaleLinks(context, marked, blob),
    context.stop,
  );
  if (staleLinks.stopped) return staleLinks;

  const stale = await forEachConcurrently(
    doomed(marked, (facts) => isStaleClaim(context, facts)),
    context.concurrency,
    (blob) => finishStaleClaim(context, marked, blob),
    context.stop,
  );
  if (stale.stopped) return stale;
  return forEachConcurrently(
    doomed(marked, (facts) => isCandidate(context, facts)),
    context.concurrency,
    (blob) => claimAndDelete(context, marked, blob),
    context.stop,
  );
}

function isCandidate(context: SweepContext, facts: BlobFacts): boolean {
  return facts.objectKey !== undefined && !facts.referenced && facts.claimedBy === undefined && facts.lastLinkedAt < context.cutoff;
}

function isStaleClaim(context: SweepContext, facts: BlobFacts): boolean {
  return (
    facts.objectKey !== undefined &&
    !facts.referenced &&
    facts.claimedBy !== undefined &&
    facts.claimedBy !== context.runId &&
    facts.claimedSince < context.staleClaimBefore
  );
}

function* doomed(marked: MarkResult, select: (facts: BlobFacts) => boolean): Generator<Doomed> {
  for (const [key, facts] of marked.blobs) if (select(facts)) yield { digest: digestOfKey(key), facts };
}

async function claimAndDelete(context: SweepContext, marked: MarkResult, { digest, facts }: Doomed): Promise<void> {
  const objectKey = facts.objectKey!;
  if (context.dryRun) {
    context.report.blobsClaimed++;
    countDeleted(context, facts.size);
    context.report.linksDeleted += facts.repoIndexes().length;
    context.logger.info('gc would delete blob', { runId: context.runId, digest, size: facts.size, objectKey, links: facts.repoIndexes().length });
    return;
  }
  const claimedAt = context.now();
  let size = facts.size;
  try {
    const { Attributes } = await context.dynamo.send(
      new UpdateCommand({
        TableName: context.tableName,
        Key: keys.blob(digest),
        UpdateExpression: 'SET deleting = :run, deletingSince = :now',
        ConditionExpression: CLAIMABLE_BLOB,
        ExpressionAttributeValues: {
          ':run': context.runId,
          ':now': claimedAt,
          ':objectKey': objectKey,
          ':cutoff': context.cutoff,
          ':epoch': context.epoch,
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
    size = (Attributes?.size as number | undefined) ?? size;
  } catch (error) {
    if (isConditionFailure(error)) {
      context.report.claimsRefused++;
      return;
    }
    context.failed('claim', { digest }, error);
    return;
  }
  context.report.blobsClaimed++;
  await deleteClaimed(context, marked, digest, facts, objectKey, context.runId, size, claimedAt);
}

/** A claim of a run that died (or failed a step) long ago: the same deletion, under its run id. */
async function finishStaleClaim(context: SweepContext, marked: MarkResult, { digest, facts }: Doomed): Promise<void> {
  const objectKey = facts.objectKey!;
  if (context.dryRun) {
    context.report.staleClaimsFinished++;
    countDeleted(context, facts.size);
    context.report.linksDeleted += facts.repoIndexes().length;
    context.logger.info('gc would finish a stale claim', { runId: context.runId, digest, claimedBy: facts.claimedBy, objectKey });
    return;
  }
  const finished = await deleteClaimed(context, marked, digest, facts, objectKey, facts.claimedBy!, facts.size, facts.claimedSince);
  if (finished) context.report.staleClaimsFinished++;
}

/**
 * Deletes a claimed blob: its links (only those naming the claimed object: a link to a newer
 * object of the same digest survives), its object, then the record, only while it still carries
 * this claim (an upload of the same bytes may have replaced it with its own object). On any
 * failure the claim stays, and a later run finishes it as a stale claim.
 */
async function deleteClaimed(
  context: SweepContext,
  marked: MarkResult,
  digest: string,
  facts: BlobFacts,
  objectKey: string,
  claimRunId: string,
  size: number,
  claimedAt: number,
): Promise<boolean> {
  const step = { name: 'links' };
  let linksDeleted = 0;
  try {
    await forEachConcurrently(facts.repoIndexes(), LINK_CONCURRENCY, async (repoIndex) => {
      try {
        await context.dynamo.send(
          new DeleteCommand({
            TableName: context.tableName,
            Key: keys.blobLink(marked.repositories[repoIndex], digest),
            ConditionExpression: 'objectKey = :objectKey',
            ExpressionAttributeValues: { ':objectKey': objectKey },
          }),
        );
        linksDeleted++;
        context.report.linksDeleted++;
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        context.report.linksSkipped++;
      }
    });
    step.name = 'object';
    await context.bucket.delete(objectKey);
    step.name = 'record';
    let outcome = 'deleted';
    try {
      await context.dynamo.send(
        new DeleteCommand({
          TableName: context.tableName,
          Key: keys.blob(digest),
          ConditionExpression: 'deleting = :run',
          ExpressionAttributeValues: { ':run': claimRunId },
        }),
      );
      countDeleted(context, size);
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      outcome = 'replaced';
      context.report.blobsReplacedMeanwhile++;
      context.report.bytesFreed += size;
    }
    context.logger.info('gc deleted blob', {
      runId: context.runId,
      digest,
      size,
      objectKey,
      links: linksDeleted,
      claimedBy: claimRunId,
      claimedAt,
      outcome,
    });
    return true;
  } catch (error) {
    // The claim stays: the blob remains invisible and a later run finishes it.
    context.failed(`delete ${step.name}`, { digest, objectKey, claimedBy: claimRunId, claimedAt }, error);
    return false;
  }
}

/**
 * Deletes the links of a digest that name an object its record does not (or that have no
 * record): pulls answer from the link alone (docs/storage.md), so such a link would send
 * clients to a deleted object. Each delete holds only if the record still does not name the
 * link's object, checked in the same transaction, so a link an upload just wrote survives.
 */
async function deleteStaleLinks(context: SweepContext, marked: MarkResult, { digest, facts }: Doomed): Promise<void> {
  await forEachConcurrently(facts.repoIndexes(), LINK_CONCURRENCY, async (repoIndex) => {
    const linkKey = keys.blobLink(marked.repositories[repoIndex]!, digest);
    try {
      const { Item } = await context.dynamo.send(
        new GetCommand({ TableName: context.tableName, Key: linkKey, ConsistentRead: true, ProjectionExpression: 'objectKey' }),
      );
      const objectKey = Item?.objectKey as string | undefined;
      if (objectKey === undefined || objectKey === facts.objectKey) return;
      if (!context.dryRun) {
        await context.dynamo.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                ConditionCheck: {
                  TableName: context.tableName,
                  Key: keys.blob(digest),
                  ConditionExpression: 'attribute_not_exists(PK) OR objectKey <> :objectKey',
                  ExpressionAttributeValues: { ':objectKey': objectKey },
                },
              },
              {
                Delete: {
                  TableName: context.tableName,
                  Key: linkKey,
                  ConditionExpression: 'objectKey = :objectKey',
                  ExpressionAttributeValues: { ':objectKey': objectKey },
                },
              },
            ],
          }),
        );
      }
      context.report.staleLinksDeleted++;
      context.logger.info('gc deleted stale link', { runId: context.runId, digest, repository: marked.repositories[repoIndex], objectKey });
    } catch (error) {
      if (!isConditionFailure(error)) context.failed('delete stale link', { digest }, error);
    }
  });
}

function countDeleted(context: SweepContext, size: number): void {
  context.report.blobsDeleted++;
  context.report.bytesFreed += size;
}
