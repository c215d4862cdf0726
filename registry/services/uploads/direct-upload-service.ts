import { randomUUID } from 'node:crypto';
import { RegistryError } from '../../model/oci/errors.js';
import { parseDigest } from '../../model/oci/grammar.js';
import type { BlobRecord } from '../../storage/blob-index.js';
import type { BlobObjectStore } from '../../storage/blob-object-store.js';
import { objectKeys } from '../../storage/keys.js';
import type { DirectUploadState, UploadSession, UploadSessionStore } from '../../storage/upload-session-store.js';
import { parsePartNumbers, planParts, plannedPart, type PartPlan, type PlannedPart } from './direct-upload-plan.js';
import { ResumableDigest } from './resumable-digest.js';

/**
 * Direct uploads (docs/direct-push.md): the client sends a blob's bytes straight to S3, in parts,
 * with presigned UploadPart URLs for the session's own object key; the registry then assembles
 * the object and proves its digest before the blob becomes visible.
 *
 * Proving a multi-GB digest takes longer than one API Gateway request may (30 s), and Lambda has
 * no place to keep working after it answers. So the proof is stepped: each poll reads the next
 * range of the object (a ranged GetObject pinned to the assembled object's ETag), hashes it for
 * up to `stepBudgetMs`, and saves the resumable SHA-256 state in the session, as PATCH does for
 * streamed uploads. The step that reaches the end compares the digest and, when it matches,
 * records and links the blob through UploadService's own path.
 */

/** What the service needs of the session store, S3 and the upload service: narrow, so that tests can fake them. */
export type DirectSessions = Pick<UploadSessionStore, 'get' | 'save' | 'delete'>;
export type DirectObjects = Pick<
  BlobObjectStore,
  'startMultipart' | 'presignUploadPart' | 'completeMultipart' | 'abortMultipart' | 'describe' | 'streamRange' | 'delete'
>;
/** UploadService.recordAndLink: the one path by which a proven blob is recorded and linked. */
export type RecordAndLink = (repository: string, assembled: BlobRecord) => Promise<BlobRecord>;

export interface DirectUploadOptions {
  /** Lifetime of presigned part URLs (S3 allows up to 7 days; keep them short). */
  urlSeconds: number;
  /** How long one request may hash before it saves its progress and answers. */
  stepBudgetMs: number;
  /** At most this many bytes hashed per request (tests; unlimited otherwise). */
  maxStepBytes: number;
  sessionTtlSeconds: number;
  now: () => number;
}

export const DEFAULT_URL_SECONDS = 15 * 60;
/** Leaves room within API Gateway's 30 s for the DynamoDB and S3 calls around the hashing. */
export const DEFAULT_STEP_BUDGET_MS = 20_000;
/** Part URLs answered at once: a presigned URL signed with a Lambda role's session token is ~1.5 KB, and a Lambda answer at most 6 MB. */
export const MAX_URLS_PER_REQUEST = 1000;
/** A completion or verification step holds the session this long at most (its budget plus the calls around it). */
const STEP_LEASE_MS = 2 * 60 * 1000;

export interface PartUrl extends PlannedPart {
  url: string;
}

export interface PartUrls {
  parts: PartUrl[];
  /** Epoch ms after which the URLs no longer start an upload. */
  expiresAt: number;
}

export type DirectStatus =
  | { state: 'parts'; digest: string; plan: PartPlan }
  /** `progressed`: whether this request hashed anything (false while another request holds the session). */
  | { state: 'verifying'; digest: string; verified: number; size: number; progressed: boolean }
  | { state: 'done'; blob: BlobRecord };

export interface StartRequest {
  digest: string;
  size: number;
  partSize?: number;
  urlSeconds?: number;
}

export class DirectUploadService {
  private readonly options: DirectUploadOptions;

  constructor(
    private readonly sessions: DirectSessions,
    private readonly objects: DirectObjects,
    private readonly recordAndLink: RecordAndLink,
    options: Partial<DirectUploadOptions> & Pick<DirectUploadOptions, 'sessionTtlSeconds'>,
  ) {
    this.options = { urlSeconds: DEFAULT_URL_SECONDS, stepBudgetMs: DEFAULT_STEP_BUDGET_MS, maxStepBytes: Infinity, now: Date.now, ...options };
  }

  /**
   * Turns an open, empty session into a direct upload of `size` bytes claimed to have `digest`:
   * starts the S3 multipart upload for the session's object key and answers the part plan with
   * URLs for the first parts. Repeating the same request answers the same plan with fresh URLs.
   */
  async start(repository: string, id: string, request: StartRequest): Promise<{ session: UploadSession; plan: PartPlan; urls: PartUrls }> {
    if (parseDigest(request.digest)?.algorithm !== 'sha256') {
      throw new RegistryError('DIGEST_INVALID', 'a direct upload needs a sha256 digest (?digest=sha256:<hex>)', {
        detail: { digest: request.digest },
      });
    }
    const plan = planParts(request.size, request.partSize);
    const session = await this.session(repository, id);
    if (session.direct) {
      const same = session.direct.phase === 'parts' && session.direct.digest === request.digest && session.direct.size === request.size;
      if (!same)
        throw new RegistryError('BLOB_UPLOAD_INVALID', 'this session is already a direct upload of other content, or past its parts', {
          detail: { uuid: id },
        });
      const existing = planOf(session.direct);
      return {
        session,
        plan: existing,
        urls: await this.presign(session, range(1, Math.min(existing.partCount, MAX_URLS_PER_REQUEST)), request.urlSeconds),
      };
    }
    if (session.offset > 0 || session.multipartUploadId || session.tailSize > 0 || this.leased(session)) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'this session has taken bytes by PATCH already: open a new one for a direct upload', {
        detail: { uuid: id },
      });
    }
    const multipartUploadId = await this.objects.startMultipart(objectKeys.blobData(session.id));
    const direct: DirectUploadState = {
      digest: request.digest,
      size: plan.size,
      partSize: plan.partSize,
      partCount: plan.partCount,
      phase: 'parts',
      verified: 0,
    };
    const next: UploadSession = { ...session, multipartUploadId, direct, version: session.version + 1, expiresAt: this.expiry() };
    if (!(await this.sessions.save(next))) {
      await this.objects.abortMultipart(objectKeys.blobData(session.id), multipartUploadId);
      throw changedMeanwhile(id);
    }
    return { session: next, plan, urls: await this.presign(next, range(1, Math.min(plan.partCount, MAX_URLS_PER_REQUEST)), request.urlSeconds) };
  }

  /** Fresh URLs for the given parts (`1-100,205`), e.g. when earlier ones expired. */
  async partUrls(repository: string, id: string, parts: string, urlSeconds?: number): Promise<PartUrls> {
    const session = await this.session(repository, id);
    const direct = this.directOf(session);
    if (direct.phase !== 'parts')
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'the parts of this upload are complete already', { detail: { uuid: id } });
    return this.presign(session, parsePartNumbers(parts, planOf(direct), MAX_URLS_PER_REQUEST), urlSeconds);
  }

  /**
   * Completes the multipart upload with the client's ETags (one per planned part, in order),
   * checks the object's size and starts proving its digest, within this request's budget.
   * Repeating it once the parts are complete is a poll.
   */
  async complete(repository: string, id: string, etags: readonly string[], startedAt = this.options.now()): Promise<DirectStatus> {
    const session = await this.session(repository, id);
    const direct = this.directOf(session);
    if (direct.phase === 'verifying') return this.verify(session, startedAt);
    if (etags.length !== direct.partCount) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', `this upload has ${direct.partCount} parts: send one ETag for each`, {
        detail: { expected: direct.partCount, received: etags.length },
      });
    }
    // One completion at a time: a retry that arrives while S3 is still assembling waits for it.
    if (this.leased(session)) return completing(direct);
    const leased = this.withLease(session);
    if (!(await this.sessions.save(leased))) return completing(direct);
    const release = () => this.sessions.save({ ...leased, ...NO_LEASE, version: leased.version + 1 }).catch(() => false);
    const key = objectKeys.blobData(session.id);
    try {
      await this.objects.completeMultipart(key, session.multipartUploadId!, etags);
    } catch (error) {
      const name = (error as { name?: string }).name ?? '';
      // Gone: an earlier attempt completed it (its answer was lost) or it was aborted. The object tells which.
      if (name !== 'NoSuchUpload') {
        await release();
        throw partsRefused(error, name);
      }
    }
    let object: { size: number; etag: string } | undefined;
    try {
      object = await this.objects.describe(key);
    } catch (error) {
      await release();
      throw error;
    }
    if (!object) {
      await this.end(session);
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'the multipart upload is gone and no object was assembled: start again', {
        detail: { uuid: id },
      });
    }
    if (object.size !== direct.size) {
      await this.end(session, key);
      throw new RegistryError('SIZE_INVALID', 'the assembled object does not have the size the upload claimed; nothing was stored', {
        detail: { expected: direct.size, actual: object.size },
      });
    }
    const hashState = (await ResumableDigest.start()).save();
    const next: UploadSession = {
      ...leased,
      ...NO_LEASE,
      direct: { ...direct, phase: 'verifying', objectETag: object.etag, verified: 0, hashState },
      version: leased.version + 1,
    };
    if (!(await this.sessions.save(next))) throw changedMeanwhile(id);
    return this.verify(next, startedAt);
  }

  /** Where the upload stands; while verifying, one more step of the proof. */
  async poll(repository: string, id: string, startedAt = this.options.now()): Promise<DirectStatus> {
    const session = await this.session(repository, id);
    const direct = this.directOf(session);
    if (direct.phase === 'parts') return this.leased(session) ? completing(direct) : { state: 'parts', digest: direct.digest, plan: planOf(direct) };
    return this.verify(session, startedAt);
  }

  /**
   * One step of the proof: hashes from where the last step stopped, for the rest of this
   * request's budget, and saves the state; the step that reaches the end decides. A mismatch
   * deletes the object and ends the session: nothing is ever recorded under the claimed digest.
   */
  private async verify(session: UploadSession, startedAt: number): Promise<DirectStatus> {
    const direct = this.directOf(session);
    const progress = (progressed: boolean, state = direct): DirectStatus => ({
      state: 'verifying',
      digest: state.digest,
      verified: state.verified,
      size: state.size,
      progressed,
    });
    // Another request is proving, or this one spent its budget already (completing a large object can take S3 a while).
    if (this.leased(session) || this.options.now() >= startedAt + this.options.stepBudgetMs) return progress(false);
    const leased = this.withLease(session);
    if (!(await this.sessions.save(leased))) return progress(false);

    const key = objectKeys.blobData(session.id);
    const digest = await ResumableDigest.start(direct.hashState);
    let verified = direct.verified;
    try {
      if (verified < direct.size) {
        const deadline = startedAt + this.options.stepBudgetMs;
        const end = Math.min(direct.size, verified + this.options.maxStepBytes) - 1;
        const { body, etag } = await this.objects.streamRange(key, verified, end, direct.objectETag);
        if (etag !== undefined && etag !== direct.objectETag) throw objectChanged(direct.objectETag, etag);
        for await (const chunk of body) {
          const wanted = Math.min(chunk.byteLength, end + 1 - verified);
          digest.update(wanted === chunk.byteLength ? chunk : chunk.subarray(0, wanted));
          verified += wanted;
          // Leaving the loop closes the stream: the rest is read by the next step.
          if (verified > end || this.options.now() >= deadline) break;
        }
      }
    } catch (error) {
      const name = (error as { name?: string }).name;
      if (error instanceof RegistryError || name === 'PreconditionFailed') {
        await this.end(leased, key);
        throw error instanceof RegistryError ? error : objectChanged(direct.objectETag, 'another');
      }
      // Transient (S3 throttling, a cut connection): free the session for the next poll to retry.
      await this.sessions.save({ ...leased, ...NO_LEASE, version: leased.version + 1 }).catch(() => false);
      throw error;
    }

    if (verified < direct.size) {
      const next: UploadSession = { ...leased, ...NO_LEASE, direct: { ...direct, verified, hashState: digest.save() }, version: leased.version + 1 };
      const saved = await this.sessions.save(next);
      return progress(saved, saved ? next.direct! : direct);
    }
    const hashedAll = digest.save();
    const actual = digest.digest();
    if (actual !== direct.digest) {
      await this.end(leased, key);
      throw new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content; nothing was stored', {
        detail: { expected: direct.digest, actual },
      });
    }
    let blob: BlobRecord;
    try {
      blob = await this.recordAndLink(session.repository, { digest: direct.digest, size: direct.size, objectKey: key });
    } catch (error) {
      // Proven but not recorded (DynamoDB busy): keep the proof, so that the next poll only records.
      const proven: UploadSession = { ...leased, ...NO_LEASE, direct: { ...direct, verified, hashState: hashedAll }, version: leased.version + 1 };
      await this.sessions.save(proven).catch(() => false);
      throw error;
    }
    await this.sessions.delete(session.id);
    return { state: 'done', blob };
  }

  private async presign(session: UploadSession, numbers: number[], urlSeconds?: number): Promise<PartUrls> {
    const direct = this.directOf(session);
    const seconds = urlSecondsWithin(urlSeconds, this.options.urlSeconds);
    const plan = planOf(direct);
    const key = objectKeys.blobData(session.id);
    const expiresAt = this.options.now() + seconds * 1000;
    const parts = await Promise.all(
      numbers.map(async (partNumber) => ({
        ...plannedPart(plan, partNumber),
        url: await this.objects.presignUploadPart(key, session.multipartUploadId!, partNumber, seconds),
      })),
    );
    return { parts, expiresAt };
  }

  /** Ends the session and drops what it wrote: the multipart upload, and the assembled object if any. */
  private async end(session: UploadSession, assembledKey?: string): Promise<void> {
    if (session.multipartUploadId) await this.objects.abortMultipart(objectKeys.blobData(session.id), session.multipartUploadId);
    if (assembledKey) await this.objects.delete(assembledKey);
    await this.sessions.delete(session.id);
  }

  /** The session, if it exists and belongs to the repository; BLOB_UPLOAD_UNKNOWN otherwise (as UploadService.get). */
  private async session(repository: string, id: string): Promise<UploadSession> {
    const session = UUID.test(id) ? await this.sessions.get(id) : undefined;
    if (!session || session.repository !== repository) {
      throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'upload unknown to registry', { detail: { uuid: id } });
    }
    return session;
  }

  private directOf(session: UploadSession): DirectUploadState {
    if (!session.direct || !session.multipartUploadId) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'this session is not a direct upload: POST .../direct first', { detail: { uuid: session.id } });
    }
    return session.direct;
  }

  /** The session held by this request (a version-checked save makes it so), and renewed. */
  private withLease(session: UploadSession): UploadSession {
    return {
      ...session,
      leaseHolder: randomUUID(),
      leaseUntil: this.options.now() + STEP_LEASE_MS,
      version: session.version + 1,
      expiresAt: this.expiry(),
    };
  }

  private leased(session: UploadSession): boolean {
    return session.leaseHolder !== undefined && (session.leaseUntil ?? 0) > this.options.now();
  }

  private expiry(): number {
    return Math.floor(this.options.now() / 1000) + this.options.sessionTtlSeconds;
  }
}

const NO_LEASE = { leaseHolder: undefined, leaseUntil: undefined };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Another request is completing the multipart upload (S3 can take a while for large objects). */
function completing(direct: DirectUploadState): DirectStatus {
  return { state: 'verifying', digest: direct.digest, verified: 0, size: direct.size, progressed: false };
}

function planOf(direct: DirectUploadState): PartPlan {
  return { size: direct.size, partSize: direct.partSize, partCount: direct.partCount };
}

function range(first: number, last: number): number[] {
  return Array.from({ length: Math.max(0, last - first + 1) }, (_, index) => first + index);
}

/** The client may ask for shorter-lived URLs than the registry's, never longer ones. */
function urlSecondsWithin(requested: number | undefined, maximum: number): number {
  if (requested === undefined) return maximum;
  if (!Number.isInteger(requested) || requested < 1) {
    throw new RegistryError('BLOB_UPLOAD_INVALID', 'expires must be a positive number of seconds', { detail: { expires: requested } });
  }
  return Math.min(requested, maximum);
}

function changedMeanwhile(id: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_INVALID', 'the upload was changed by another request; retry', { refusal: 'changed', detail: { uuid: id } });
}

function objectChanged(expected: string | undefined, actual: string): RegistryError {
  return new RegistryError('DIGEST_INVALID', 'the assembled object changed while its digest was being proven; nothing was stored', {
    detail: { expectedETag: expected, actualETag: actual },
  });
}

/** S3's refusals of a completion are the client's to fix (missing or wrong parts); the session stays. */
function partsRefused(error: unknown, name: string): unknown {
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const known = ['InvalidPart', 'InvalidPartOrder', 'EntityTooSmall', 'MalformedXML', 'NoSuchKey'].includes(name);
  if (!known && !(status !== undefined && status >= 400 && status < 500)) return error;
  return new RegistryError(
    'BLOB_UPLOAD_INVALID',
    `S3 refused to assemble the parts (${name || status}): upload the missing or changed parts and complete again`,
    {
      detail: { s3Error: name || undefined, message: (error as Error).message },
    },
  );
}
