import { RegistryError } from '../../model/oci/errors.js';
import { parseDigest } from '../../model/oci/grammar.js';
import { parseManifest, type ParsedManifest } from '../../model/oci/manifest.js';
import { immutableImageDenied, immutableRuleFor, immutableTagDenied } from '../../model/policies/immutability.js';
import { BlobGoneError, type BlobRecord } from '../../storage/blob-index.js';
import { ContendedError, type TransactionItem } from '../../storage/dynamo-errors.js';
import type { DeletionMarker } from '../../storage/deletion-markers.js';
import {
  ChildManifestGoneError,
  ProtectedManifestError,
  TagConflictError,
  UnlinkedMeanwhileError,
  type ManifestStore,
  type StoredManifest,
} from '../../storage/manifest-store.js';
import { RulesChangedError, SNAPSHOT_ATTRIBUTES, type PolicyStore } from '../../storage/policy-store.js';

/**
 * Tags one push may set with `?tag=`: each is a write in the manifest's transaction (which holds
 * 100 items), and a longer list is refused with 414 as the spec allows.
 */
export const MAX_TAGS_PER_PUSH = 20;

/** A push checks its blobs (or rules) again this often when blob deletes (or rule changes) keep racing it. */
const PUSH_ATTEMPTS = 3;
/** A tag delete reads the rules again this often when rule changes keep racing it. */
const TAG_DELETE_ATTEMPTS = 3;

export interface ManifestPush {
  bytes: Uint8Array;
  contentType: string | undefined;
  /** The digest the client pushed by, if it did: the bytes must hash to it, with its algorithm. */
  digest?: string;
  /** Tags to point at the manifest, at most MAX_TAGS_PER_PUSH. */
  tags: readonly string[];
  /** The push's audit record for its digest, written in its transaction (docs/audit-log.md). */
  auditWrite?: (digest: string) => TransactionItem;
  /** Who pushes (the caller's subject), kept on the manifest item for events and the audit (docs/events.md). */
  pushedBy?: string;
}

/**
 * Manifests as the API sees them: read by tag or digest, pushed (validated against what the
 * repository holds, with immutable-tag rules and the blobs' liveness as conditions of one
 * transaction), deleted (never what an immutable tag reaches).
 */
export class ManifestService {
  constructor(
    private readonly manifests: ManifestStore,
    private readonly policies: PolicyStore,
    /** On a miss, records a blob the front door put straight into the bucket (DirectUploadRecording). */
    private readonly recordPending: (repository: string, digest: string) => Promise<BlobRecord | undefined> = async () => undefined,
  ) {}

  /**
   * What a HEAD answers (digest, media type, size) without the bytes: by tag from the tag's
   * item alone when it carries them, one read; a manifest kept in S3 is never fetched for it.
   */
  async describe(repository: string, reference: { tag?: string; digest?: string }): Promise<Omit<StoredManifest, 'bytes'> | undefined> {
    if (reference.tag) {
      const tagged = await this.manifests.describeTag(repository, reference.tag);
      if (!tagged) return undefined;
      if (tagged.size !== undefined && tagged.mediaType !== undefined)
        return { digest: tagged.digest, mediaType: tagged.mediaType, size: tagged.size };
      return this.manifests.describeManifest(repository, tagged.digest);
    }
    return this.manifests.describeManifest(repository, reference.digest!);
  }

  /**
   * By a tag or a digest; undefined when the repository has no such manifest. By tag, a small
   * manifest comes from the tag's item alone (one read); a larger one from its own item next.
   */
  async find(repository: string, reference: { tag?: string; digest?: string }): Promise<StoredManifest | undefined> {
    if (reference.digest) return this.manifests.getManifest(repository, reference.digest);
    const tagged = await this.manifests.describeTag(repository, reference.tag!);
    if (!tagged) return undefined;
    const { digest, mediaType, size, bytes } = tagged;
    if (bytes && mediaType !== undefined && size !== undefined) return { digest, mediaType, size, bytes };
    return this.manifests.getManifest(repository, digest);
  }

  async push(repository: string, push: ManifestPush): Promise<ParsedManifest> {
    if (push.tags.length > MAX_TAGS_PER_PUSH) {
      throw new RegistryError('UNSUPPORTED', `at most ${MAX_TAGS_PER_PUSH} tags may be pushed at once`, {
        refusal: 'tooManyTags',
        detail: { tags: push.tags.length },
      });
    }
    const manifest = parseManifest(push.bytes, push.contentType, push.digest ? parseDigest(push.digest)!.algorithm : 'sha256');
    if (push.digest && push.digest !== manifest.digest) {
      throw new RegistryError('DIGEST_INVALID', 'manifest digest does not match the reference', {
        detail: { reference: push.digest, digest: manifest.digest },
      });
    }
    const tagged = push.tags.length > 0;
    for (let attempt = 1; ; attempt++) {
      // Before the blobs are read: a blob delete since then fails the push (docs/storage.md).
      const unlinks = this.manifests.knownUnlinks(repository);
      // Immutable tag rules apply to every tagged push (docs/policies.md): as this process last
      // read them, checked in the push's transaction; read with the references when not known.
      const cachedRules = tagged ? this.policies.cachedImmutableRules(repository) : undefined;
      const reads = await this.manifests.readForPush(repository, manifest.blobDigests, manifest.childDigests, {
        keys: tagged && !cachedRules ? [this.policies.immutableSnapshotKey(repository)] : [],
        attributes: SNAPSHOT_ATTRIBUTES,
      });
      await this.recordMissing(repository, manifest.blobDigests, reads.linked);
      const missingBlob = manifest.blobDigests.find((digest) => !reads.linked.has(digest));
      if (missingBlob) throw blobUnknown(missingBlob);
      const missingChild = manifest.childDigests.find((digest) => !reads.children.has(digest));
      if (missingChild) throw childUnknown(missingChild);
      const rules = tagged ? (cachedRules ?? (await this.policies.learnImmutableRules(repository, reads.extra[0]))) : undefined;
      const immutable = new Map(
        push.tags.flatMap((tag) => {
          const rule = rules && immutableRuleFor(rules.rules, repository, tag);
          return rule ? [[tag, rule] as const] : [];
        }),
      );
      try {
        // A rule's check is its tag write's condition, so of racing pushes only one can win; the
        // blobs' liveness is the condition of their references in the same transaction.
        await this.manifests.putManifest(repository, { ...manifest, bytes: push.bytes, pushedBy: push.pushedBy }, push.tags, {
          immutableTags: new Set(immutable.keys()),
          blobs: [...reads.linked.values()],
          unlinks,
          rulesCheck: rules && this.policies.immutableRulesCheck(rules),
          alsoWrite: push.auditWrite?.(manifest.digest),
        });
        return manifest;
      } catch (error) {
        if (error instanceof TagConflictError && immutable.has(error.tag)) {
          // A refusal is decided on rules read now, never on remembered ones (the rule may be gone).
          if (!cachedRules) throw immutableTagDenied(repository, error.tag, immutable.get(error.tag)!, 'overwrite');
          this.policies.forgetImmutableRules();
          continue;
        }
        if (error instanceof ChildManifestGoneError) throw childUnknown(error.digest);
        if (error instanceof BlobGoneError) throw blobUnknown(error.digest);
        // A rule changed since it was read: read the rules again.
        if (error instanceof RulesChangedError) {
          this.policies.forgetImmutableRules();
          if (attempt === PUSH_ATTEMPTS) throw new ContendedError('the immutable rules');
          continue;
        }
        // A blob delete raced the push: check the blobs again.
        if (!(error instanceof UnlinkedMeanwhileError)) throw error;
        if (attempt === PUSH_ATTEMPTS) throw new ContendedError(`the blobs of ${repository}`);
      }
    }
  }

  /** Adds to `linked` the blobs of `digests` that it lacks and that a pending direct upload holds. */
  private async recordMissing(repository: string, digests: readonly string[], linked: Map<string, BlobRecord>): Promise<void> {
    for (const digest of new Set(digests.filter((candidate) => !linked.has(candidate)))) {
      const recorded = await this.recordPending(repository, digest);
      if (recorded) linked.set(digest, recorded);
    }
  }

  /**
   * By digest, the manifest and its tags go; by tag, only the tag. Immutable tags are refused
   * either way: by tag, and by digest when an immutable tag names the manifest or an index that
   * lists it (deleting a platform's manifest would break the multi-arch image). Answers false
   * when there was nothing to delete. `deletedBy` (the client's token subject; absent in open
   * mode) is marked in the delete's transactions for its events (docs/events.md); `auditWrite`
   * goes in the transaction that deletes (its audit record).
   */
  async delete(
    repository: string,
    reference: { tag?: string; digest?: string },
    { deletedBy, auditWrite }: { deletedBy?: string; auditWrite?: TransactionItem } = {},
  ): Promise<boolean> {
    const { tag, digest } = reference;
    const marker: DeletionMarker = { reason: 'request', ...(deletedBy ? { actor: deletedBy } : {}) };
    if (digest) {
      const rules = await this.policies.immutableRules();
      try {
        return await this.manifests.deleteManifest(repository, digest, {
          protectedTag: (name) => immutableRuleFor(rules, repository, name) !== undefined,
          deletedBy: marker,
          alsoWrite: auditWrite,
        });
      } catch (error) {
        if (!(error instanceof ProtectedManifestError)) throw error;
        const rule = immutableRuleFor(rules, repository, error.tag)!;
        throw error.via
          ? immutableImageDenied(repository, error.tag, rule, { manifest: digest, index: error.via })
          : immutableTagDenied(repository, error.tag, rule, 'delete');
      }
    }
    return this.deleteTag(repository, tag!, marker, auditWrite);
  }

  /**
   * One call on a warm instance: the rules as last read say whether the tag is immutable, and
   * the delete is one transaction with the check that those rules are still in force. A refusal
   * is decided on rules read now, never on remembered ones.
   */
  private async deleteTag(repository: string, tag: string, marker: DeletionMarker, auditWrite?: TransactionItem): Promise<boolean> {
    for (let attempt = 1; attempt <= TAG_DELETE_ATTEMPTS; attempt++) {
      let rules = await this.policies.immutableRulesFor(repository);
      if (immutableRuleFor(rules.rules, repository, tag)) rules = await this.policies.immutableRulesFor(repository, { fresh: true });
      const rule = immutableRuleFor(rules.rules, repository, tag);
      if (rule) {
        if (!(await this.manifests.resolveTag(repository, tag))) return false;
        throw immutableTagDenied(repository, tag, rule, 'delete');
      }
      try {
        return await this.manifests.deleteTag(repository, tag, this.policies.immutableRulesCheck(rules), marker, auditWrite);
      } catch (error) {
        if (!(error instanceof RulesChangedError)) throw error;
        this.policies.forgetImmutableRules();
      }
    }
    throw new ContendedError('the immutable rules');
  }
}

function blobUnknown(digest: string): RegistryError {
  return new RegistryError('MANIFEST_BLOB_UNKNOWN', 'manifest references a blob unknown to this repository', { detail: { digest } });
}

/** A push is refused, not a lookup: 400 rather than MANIFEST_UNKNOWN's usual 404. */
function childUnknown(digest: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', 'index references a manifest unknown to this repository', {
    refusal: 'badReference',
    detail: { digest },
  });
}
