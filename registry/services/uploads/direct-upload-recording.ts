import type { BlobIndex, BlobRecord } from '../../storage/blob-index.js';
import type { BlobObjectStore } from '../../storage/blob-object-store.js';
import { DIRECT_UPLOAD_PREFIX, objectKeys } from '../../storage/keys.js';
import type { UploadSessionStore } from '../../storage/upload-session-store.js';
import type { Logger } from '../../support/logger.js';

/** The metadata the front door's function puts on a direct upload (S3 gives it without the `x-amz-meta-`). */
const REPOSITORY_METADATA = 'registry-repository';

const DIRECT_KEY = new RegExp(`^${DIRECT_UPLOAD_PREFIX}sha256/([0-9a-f]{64})/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$`);

/** Of a `direct/` object key, the digest and the upload session it names; undefined for any other key. */
export function parseDirectUploadKey(key: string): { digest: string; sessionId: string } | undefined {
  const match = DIRECT_KEY.exec(key);
  return match ? { digest: `sha256:${match[1]}`, sessionId: match[2]! } : undefined;
}

/**
 * Blobs that the front door put straight into the bucket (docs/front-door.md): a monolithic
 * PUT with a valid ticket goes to `direct/sha256/<hex>/<session>` with `x-amz-checksum-sha256`,
 * so S3 itself refused any body that does not hash to the digest. The blob becomes visible in
 * the session's repository here, the one way for all callers:
 * - the S3 event of the new object (functions/direct-upload-recorder.ts), `recordObject`;
 * - a request that needs the blob before that event was handled (blob HEAD and GET, a manifest
 *   push naming it, a mount from the repository), `recordPending`, on its miss path only.
 *
 * What makes an object count: the checksum S3 verified equals the digest in the key (defence in
 * depth: only the front door can write under `direct/`), and the session in the key is a live
 * upload session of the repository. The blob record then names the object itself: no copy.
 * Recording again is harmless: the record and the link are put again, or found in place.
 */
export class DirectUploadRecording {
  constructor(
    private readonly objects: BlobObjectStore,
    private readonly sessions: UploadSessionStore,
    private readonly blobs: BlobIndex,
    /** UploadService.recordAndLink: the one way a proven blob becomes visible. */
    private readonly recordAndLink: (repository: string, blob: BlobRecord) => Promise<BlobRecord>,
    /** Whether requests look for unrecorded direct uploads on a miss (only behind the front door). */
    private readonly onMisses: boolean,
    private readonly logger?: Logger,
  ) {}

  /** Records the object the S3 event names; undefined when it does not count (or is gone). */
  async recordObject(key: string): Promise<BlobRecord | undefined> {
    return this.record(key);
  }

  /**
   * On a miss: records the direct uploads of `digest` into `repository` that have not been
   * recorded yet (one listing by the digest's prefix), answering the blob when one counted.
   */
  async recordPending(repository: string, digest: string): Promise<BlobRecord | undefined> {
    if (!this.onMisses || !digest.startsWith('sha256:')) return undefined;
    const candidates = this.objects.list(objectKeys.directUploads(digest));
    const first = await candidates.next();
    await candidates.return(undefined);
    for (const object of first.done ? [] : first.value) {
      const recorded = await this.record(object.key, repository);
      if (recorded) return recorded;
    }
    return undefined;
  }

  private async record(key: string, repository?: string): Promise<BlobRecord | undefined> {
    const named = parseDirectUploadKey(key);
    if (!named) return undefined;
    const object = await this.objects.checksummed(key);
    if (!object) return undefined;
    if (object.sha256 !== named.digest.slice('sha256:'.length)) {
      this.logger?.warn('direct upload not recorded: its checksum is not the digest it is stored under', { key, checksum: object.sha256 ?? null });
      return undefined;
    }
    const session = await this.sessions.get(named.sessionId);
    if (!session) {
      // The session ends when its blob is recorded: recorded before, if the record names this object.
      const existing = await this.blobs.getBlob(named.digest);
      if (existing?.objectKey !== key) return undefined;
      return repository === undefined ? existing : this.blobs.getLink(repository, named.digest);
    }
    const owner = session.repository;
    const claimed = object.metadata[REPOSITORY_METADATA];
    if ((repository !== undefined && owner !== repository) || (claimed !== undefined && claimed !== owner)) return undefined;
    const record = await this.recordAndLink(owner, { digest: named.digest, size: object.size, objectKey: key });
    await this.sessions.delete(session.id);
    return record;
  }
}
