import { objectKeys, sessionOfBlobKey } from '../../storage/keys.js';
import { parseDirectUploadKey } from '../uploads/direct-upload-recording.js';
import type { ListedObject } from '../../storage/blob-object-store.js';
import { forEachConcurrently } from '../../support/concurrency.js';
import type { SweepContext } from './context.js';
import type { MarkResult } from './mark.js';

/** Top-level prefixes of the bucket, taken from keys.ts. */
const BLOBS = objectKeys.blobData('');
const UPLOADS = prefixOf(objectKeys.uploadTail('x', 'y'));
const MANIFESTS = prefixOf(objectKeys.manifest('sha256:x', 'push'));
/** Blob objects the front door put straight into the bucket (docs/front-door.md): blob objects like `blobs/`. */
const DIRECT = objectKeys.directUploads('sha256:').slice(0, -1);

/**
 * Where the run remembers the `blobs/` objects it found unowned, for the next run to confirm.
 * Not under any prefix the registry writes.
 */
export const ORPHAN_CANDIDATES_KEY = 'gc/orphan-blob-objects.json';
/** Past this many, candidates wait for a later run. */
const MAX_CANDIDATES = 100_000;

/**
 * S3 gives LastModified to the second: an object may look up to a second older than it is.
 * Clocks of S3 and Lambda also differ a little. Objects must be this much older than the cutoff.
 */
const TIMESTAMP_SLACK_MS = 2_000;

/**
 * A push writes a large manifest's object before its transaction, and may retry that
 * transaction for as long as the request lasts (a Lambda runs 15 minutes at most): an object
 * younger than that may belong to a push whose item the mark could not yet see, whatever the
 * grace period.
 */
const LONGEST_REQUEST_MS = 15 * 60_000;

interface CandidateFile {
  runId: string;
  /** Epoch ms, after the writing run's mark had ended. */
  writtenAt: number;
  keys: string[];
}

/**
 * Deletes S3 objects nothing names any more:
 * - `uploads/<session>/tail-*` whose session is gone (or was ended by this run) or names
 *   another tail, older than the grace period: a request writes a tail and saves it in its
 *   session within its own duration, and a saved session never goes back to an older tail;
 * - `manifests/...` no manifest item names, older than the grace period (a push writes the
 *   object just before the item), checked again just before the delete;
 * - `blobs/<session>`, `blobs/<session>-<nonce>` (a small whole-body PATCH's object, which
 *   its finish may record as the blob) and `direct/sha256/<hex>/<session>` no blob record names
 *   and no live session owns, older than the grace period, seen so by two runs in a row (see below).
 *
 * Why `blobs/` objects need two runs: a finishing upload writes the blob record and only then
 * deletes its session. A scan may read the record's part of the table before the record exists
 * and the session's part after the session is gone, and so see the object unnamed and unowned.
 * Its age does not help: a retried finish may record an object assembled hours earlier, and a
 * multipart object's LastModified is when its upload began. Everything such a finish writes
 * exists before the run ends, so the next run, whose scan starts later, sees the record.
 */
export async function sweepOrphanObjects(context: SweepContext, marked: MarkResult, endedSessions: Set<string>): Promise<{ stopped: boolean }> {
  const youngestDeletable = context.cutoff - TIMESTAMP_SLACK_MS;
  const liveSession = (id: string) => marked.sessions.has(id) && !endedSessions.has(id);
  /** `recheckBefore`: look at the object again just before deleting it, and keep it unless older than that. */
  const deleteAll = async (
    objects: ListedObject[],
    counter: 'orphanTailsDeleted' | 'orphanManifestObjectsDeleted' | 'orphanBlobObjectsDeleted',
    recheckBefore?: number,
  ) => {
    await forEachConcurrently(objects, context.concurrency, async (object) => {
      try {
        if (!context.dryRun) {
          if (recheckBefore !== undefined) {
            const lastModified = await context.bucket.lastModified(object.key);
            if (lastModified === undefined || lastModified >= recheckBefore) return;
          }
          await context.bucket.delete(object.key);
        }
        context.report[counter]++;
        context.report.orphanObjectsDeleted++;
        context.report.orphanBytesFreed += object.size;
      } catch (error) {
        context.failed('delete orphan object', { key: object.key }, error);
      }
    });
  };

  // Tails.
  await context.bucket.listByHexShards(
    UPLOADS,
    async (page) => {
      const orphans = page.filter((object) => {
        if (object.lastModified >= youngestDeletable) return false;
        const sessionId = object.key.slice(UPLOADS.length).split('/')[0];
        if (!object.key.startsWith(objectKeys.uploadTail(sessionId, ''))) return false;
        return !(liveSession(sessionId) && marked.sessions.get(sessionId)!.tailKey === object.key);
      });
      await deleteAll(orphans, 'orphanTailsDeleted');
    },
    context.stop,
  );
  if (context.stop()) return { stopped: true };

  // Large manifests.
  const youngestManifest = Math.min(youngestDeletable, context.t0 - LONGEST_REQUEST_MS - TIMESTAMP_SLACK_MS);
  for await (const page of context.bucket.list(MANIFESTS, context.stop)) {
    const orphans = page.filter((object) => object.lastModified < youngestManifest && !marked.manifestObjectKeys.has(object.key));
    await deleteAll(orphans, 'orphanManifestObjectsDeleted', youngestManifest);
  }
  if (context.stop()) return { stopped: true };

  // Blob objects, confirmed by a second run.
  const previous = await context.bucket.readJson<CandidateFile>(ORPHAN_CANDIDATES_KEY);
  const confirmable = new Set(previous && previous.writtenAt < context.t0 ? previous.keys : []);
  const named = new Set<string>();
  for (const facts of marked.blobs.values()) if (facts.objectKey !== undefined) named.add(facts.objectKey);
  const pending: string[] = [];
  for (const prefix of [BLOBS, DIRECT]) {
    await context.bucket.listByHexShards(
      prefix,
      async (page) => {
        const confirmed: ListedObject[] = [];
        for (const object of page) {
          if (object.lastModified >= youngestDeletable || named.has(object.key)) continue;
          const sessionId = owningSession(object.key);
          if (sessionId === undefined || liveSession(sessionId)) continue;
          if (confirmable.has(object.key)) confirmed.push(object);
          else pending.push(object.key);
        }
        await deleteAll(confirmed, 'orphanBlobObjectsDeleted');
      },
      context.stop,
    );
    if (context.stop()) return { stopped: true };
  }
  context.report.orphanBlobObjectsPending = pending.length;
  if (!context.dryRun && (pending.length > 0 || confirmable.size > 0)) {
    const file: CandidateFile = { runId: context.runId, writtenAt: context.now(), keys: pending.slice(0, MAX_CANDIDATES) };
    await context.bucket.writeJson(ORPHAN_CANDIDATES_KEY, file);
  }
  return { stopped: false };
}

/** The upload session a blob object is named by; undefined for a key of no known shape (never deleted). */
function owningSession(key: string): string | undefined {
  if (key.startsWith(DIRECT)) return parseDirectUploadKey(key)?.sessionId;
  return sessionOfBlobKey(key);
}

function prefixOf(key: string): string {
  return key.slice(0, key.indexOf('/') + 1);
}
