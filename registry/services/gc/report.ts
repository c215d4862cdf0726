/** The phases of one run, in order; a deadline may stop the run in any of them. */
export type GcPhase = 'mark' | 'blobs' | 'uploads' | 'objects';

/**
 * What one garbage collection run saw and did. In a dry run the "deleted" counts say what the
 * run would have deleted had no concurrent push touched anything meanwhile.
 */
export interface GcReport {
  runId: string;
  dryRun: boolean;
  /** T0: the run's start, from which the grace cutoff is counted. */
  startedAt: string;
  graceSeconds: number;
  /** False when the deadline stopped the run before it had done everything; the next run continues. */
  complete: boolean;
  /** The phase the deadline stopped, when `complete` is false. */
  stoppedIn?: GcPhase;
  durationMs: number;
  phaseMs: Record<GcPhase, number>;

  // Mark
  itemsScanned: number;
  blobRecords: number;
  manifests: number;
  links: number;
  /** Blob records named by at least one manifest: the roots keep them. */
  blobsLive: number;
  /** Unreferenced blob records linked, touched or created within the grace period. */
  blobsInGrace: number;
  /**
   * Digests some manifest names that have no blob record in the scan. Zero on a quiet registry;
   * a push racing the scan can add a few (the record was written after its part was scanned).
   */
  referencesWithoutRecord: number;
  /** Manifest items without a `blobDigests` list: if any, no blob is swept (the roots are unknown). */
  manifestsWithoutBlobList: number;

  // Blob sweep
  blobCandidates: number;
  blobsClaimed: number;
  /** Claims refused by their condition: touched, relinked or replaced since the scan. */
  claimsRefused: number;
  /** Claims of earlier runs that died part-way, finished by this one. */
  staleClaimsFinished: number;
  /** Claimed records removed; a claimed record replaced by a new upload of the same bytes is not. */
  blobsDeleted: number;
  /** Claimed blobs whose record a new upload of the same bytes replaced: only the old object went. */
  blobsReplacedMeanwhile: number;
  linksDeleted: number;
  /** Links of a claimed blob left alone: already gone, or naming a newer object. */
  linksSkipped: number;
  /** Links naming an object their blob record no longer names (left by a deletion that failed part-way). */
  staleLinksDeleted: number;
  bytesFreed: number;

  // Upload sweep
  sessionsScanned: number;
  sessionsExpired: number;
  multipartUploadsAborted: number;

  // Orphan objects
  orphanBlobObjectsDeleted: number;
  /** `blobs/` objects seen unowned for the first time: deleted by the next run if still unowned. */
  orphanBlobObjectsPending: number;
  orphanTailsDeleted: number;
  orphanManifestObjectsDeleted: number;
  orphanObjectsDeleted: number;
  orphanBytesFreed: number;

  /** Individual steps that failed (logged); the run carries on and a later run retries them. */
  errors: number;
}

export function emptyReport(runId: string, dryRun: boolean, startedAt: number, graceSeconds: number): GcReport {
  return {
    runId,
    dryRun,
    startedAt: new Date(startedAt).toISOString(),
    graceSeconds,
    complete: true,
    durationMs: 0,
    phaseMs: { mark: 0, blobs: 0, uploads: 0, objects: 0 },
    itemsScanned: 0,
    blobRecords: 0,
    manifests: 0,
    links: 0,
    blobsLive: 0,
    blobsInGrace: 0,
    referencesWithoutRecord: 0,
    manifestsWithoutBlobList: 0,
    blobCandidates: 0,
    blobsClaimed: 0,
    claimsRefused: 0,
    staleClaimsFinished: 0,
    blobsDeleted: 0,
    blobsReplacedMeanwhile: 0,
    linksDeleted: 0,
    linksSkipped: 0,
    staleLinksDeleted: 0,
    bytesFreed: 0,
    sessionsScanned: 0,
    sessionsExpired: 0,
    multipartUploadsAborted: 0,
    orphanBlobObjectsDeleted: 0,
    orphanBlobObjectsPending: 0,
    orphanTailsDeleted: 0,
    orphanManifestObjectsDeleted: 0,
    orphanObjectsDeleted: 0,
    orphanBytesFreed: 0,
    errors: 0,
  };
}
