/**
 * The single-table key design. Every item has a string partition key `PK` and sort key `SK`;
 * the access patterns are listed in docs/storage.md. Keeping every key shape here means no
 * other module spells out a key by hand.
 */
export const keys = {
  /** A blob's global record: its size and the S3 object holding its bytes. */
  blob: (digest: string) => ({ PK: `BLOB#${digest}`, SK: 'BLOB' }),
  /** A blob linked to a repository: only linked blobs are visible there. */
  blobLink: (repository: string, digest: string) => ({ PK: repoPartition(repository), SK: `LINK#${digest}` }),
  manifest: (repository: string, digest: string) => ({ PK: repoPartition(repository), SK: `${MANIFEST_PREFIX}${digest}` }),
  tag: (repository: string, tag: string) => ({ PK: repoPartition(repository), SK: `${TAG_PREFIX}${tag}` }),
  referrer: (repository: string, subject: string, digest: string) => ({
    PK: repoPartition(repository),
    SK: `${referrerPrefix(subject)}${digest}`,
  }),
  /**
   * One partition lists every repository, sorted by name, for `_catalog`. The entry also
   * counts the repository's manifest pushes and blob unlinks, which order the two
   * (ManifestStore.unlinkBlob).
   */
  catalogEntry: (repository: string) => ({ PK: CATALOG_PARTITION, SK: repository }),
  /** The counter garbage-collection runs advance, in shards (gc-epoch.ts). */
  gcEpoch: (shard: number) => ({ PK: GC_PARTITION, SK: `EPOCH#${shard}` }),
  uploadSession: (id: string) => ({ PK: `UPLOAD#${id}`, SK: 'UPLOAD' }),
  /** Access policy: one small partition holding every grant and public pattern. */
  groupGrant: (group: string, pattern: string) => ({ PK: ACCESS_PARTITION, SK: `GROUP#${group}#${pattern}` }),
  publicPattern: (pattern: string) => ({ PK: ACCESS_PARTITION, SK: `PUBLIC#${pattern}` }),
  /** Robots share one partition so that they can be listed. */
  robot: (name: string) => ({ PK: ROBOT_PARTITION, SK: name }),
  /** OIDC workload trusts: one small partition, read whole by token requests (trust-store.ts). */
  trust: (name: string) => ({ PK: TRUST_PARTITION, SK: name }),
  /**
   * Login state (docs/logins.md), one partition per login name, lower-cased as the pool matches
   * names: which refresh tokens still count, and failed logins from each source address.
   */
  userSessions: (username: string) => ({ PK: userPartition(username), SK: 'SESSIONS' }),
  userLoginFailures: (username: string, source: string) => ({ PK: userPartition(username), SK: `FAILURES#${source}` }),
  /** A personal access token, in its user's partition: a login names both (personal-token-store.ts). */
  personalToken: (username: string, id: string) => ({ PK: userPartition(username), SK: `${PERSONAL_TOKEN_PREFIX}${id}` }),
  /** Failed logins from one source address, whatever the name. */
  sourceLoginFailures: (source: string) => ({ PK: `${SOURCE_PREFIX}${source}`, SK: 'FAILURES' }),
  /** Retention and immutability rules: one small partition, read whole by a push or a retention run. */
  retentionRule: (pattern: string) => ({ PK: POLICY_PARTITION, SK: `${RETENTION_PREFIX}${pattern}` }),
  immutableRule: (pattern: string) => ({ PK: POLICY_PARTITION, SK: `${IMMUTABLE_PREFIX}${pattern}` }),
  /**
   * Every immutable rule in one item, with a version, in shards like the GC epoch's (a
   * repository's pushes read and check the one its name hashes to): policy-store.ts.
   */
  immutableSnapshot: (shard: number) => ({ PK: POLICY_PARTITION, SK: `RULES#${shard}` }),
  /**
   * An audit record (docs/audit-log.md), in the partition of its UTC hour, sorted by time: a time
   * range is a Query of each hour it spans, never a Scan.
   */
  auditRecord: (time: string, id: string) => ({ PK: auditBucket(time), SK: `${time}#${id}` }),
  /** Webhook subscriptions share one partition so that they can be listed (docs/events.md). */
  webhook: (name: string) => ({ PK: WEBHOOK_PARTITION, SK: name }),
  /** A webhook's deliveries, newest last by sort key (`<ISO time>#<delivery id>`), expiring by TTL. */
  webhookDelivery: (name: string, sortKey: string) => ({ PK: `${WEBHOOK_DELIVERY_PREFIX}${name}`, SK: sortKey }),
  /** Pulls of one repository and tag in one minute (`2025-01-31T12:34`), counted for pull events. */
  pullCount: (minute: string, repository: string, tag: string) => ({
    PK: `${PULL_COUNT_PREFIX}${minute}`,
    SK: `${PULL_COUNT_PREFIX}${repository}:${tag}`,
  }),
  /** A pull-through upstream (docs/pull-through.md): one small partition, read whole. */
  upstream: (name: string) => ({ PK: UPSTREAM_PARTITION, SK: name }),
  /** Single flight of a cache miss or revalidation of one tag in a cache repository (manifest-cache.ts). */
  tagPullLease: (repository: string, tag: string) => ({ PK: `PULL#TAG#${repository}:${tag}`, SK: 'LEASE' }),
  /**
   * Single flight of a blob's first pull into the cache (pull-lease-store.ts): who copies it from
   * the upstream, the upstream's redirect meanwhile, and the upload session holding the copy so far.
   */
  blobPullLease: (digest: string) => ({ PK: `PULL#BLOB#${digest}`, SK: 'LEASE' }),
  /**
   * Why and by whom a manifest or tag item was deleted (deletion-markers.ts): written in the
   * delete's own transaction, read by the event dispatcher for the REMOVE record, kept two days.
   */
  deletionMarker: (repository: string, sortKey: string) => ({ PK: `${DELETION_PREFIX}${repository}`, SK: sortKey }),
  /** Never written: the health check reads it to see that the table answers (health-probe.ts). */
  healthProbe: () => ({ PK: 'HEALTH', SK: 'PROBE' }),
};

export const POLICY_PARTITION = 'POLICY';
export const RETENTION_PREFIX = 'RETENTION#';
export const IMMUTABLE_PREFIX = 'IMMUTABLE#';

export const ACCESS_PARTITION = 'ACCESS';
export const UPSTREAM_PARTITION = 'UPSTREAM';
export const GC_PARTITION = 'GC';
export const ROBOT_PARTITION = 'ROBOT';
export const TRUST_PARTITION = 'TRUST';

/** Partitions of login state: `USER#<name>`, `SOURCE#<address>`. */
export const USER_PREFIX = 'USER#';
export const SOURCE_PREFIX = 'SOURCE#';
export const PERSONAL_TOKEN_PREFIX = 'TOKEN#';

export function userPartition(username: string): string {
  return `${USER_PREFIX}${username.toLowerCase()}`;
}

export const AUDIT_PREFIX = 'AUDIT#';

/** The hour partition of an ISO 8601 time: `AUDIT#2026-12-02T03`. */
export function auditBucket(time: string): string {
  return `${AUDIT_PREFIX}${time.slice(0, 13)}`;
}
export const WEBHOOK_PARTITION = 'WEBHOOK';
export const WEBHOOK_DELIVERY_PREFIX = 'WEBHOOK#';
export const PULL_COUNT_PREFIX = 'PULLS#';
export const DELETION_PREFIX = 'DELETED#';

export const TAG_PREFIX = 'TAG#';
export const MANIFEST_PREFIX = 'MANIFEST#';
export const CATALOG_PARTITION = 'CATALOG';

const REPO_PREFIX = 'REPO#';

export function repoPartition(repository: string): string {
  return `${REPO_PREFIX}${repository}`;
}

/** The repository a `REPO#<name>` partition belongs to; undefined for any other partition. */
export function repositoryOfPartition(partition: string): string | undefined {
  return partition.startsWith(REPO_PREFIX) ? partition.slice(REPO_PREFIX.length) : undefined;
}

export function referrerPrefix(subject: string): string {
  return `REFERRER#${subject}#`;
}

/**
 * Where the front door (functions/edge/front-door.js) puts the body of a monolithic PUT, straight
 * from the client (docs/front-door.md): S3 has verified its sha256 checksum on the way in.
 */
export const DIRECT_UPLOAD_PREFIX = 'direct/';

/** S3 object keys. Blob objects are named by the upload that wrote them; see docs/storage.md. */
export const objectKeys = {
  blobData: (uploadId: string) => `blobs/${uploadId}`,
  /**
   * A blob object a session names before its finish: the bytes of one whole-body PATCH under
   * S3's minimum part size, which the finish records as the blob when no more bytes come
   * (docs/storage.md). Fresh per request, so that two requests racing on one session never write
   * one key; named by the session, so that GC keeps it while the session lives (`sessionOfBlobKey`).
   */
  sessionBlob: (uploadId: string, nonce: string) => `blobs/${uploadId}-${nonce}`,
  uploadTail: (uploadId: string, nonce: string) => `uploads/${uploadId}/tail-${nonce}`,
  /** Named per push, so that GC deleting an orphaned copy can never hit one a new push just wrote. */
  manifest: (digest: string, pushId: string) => `manifests/${digest.replace(':', '/')}/${pushId}`,
  /**
   * A blob PUT through the front door: digest first, so that a request that needs the blob
   * before its S3 event is handled finds the candidates with one listing of `directUploads(digest)`.
   */
  directUpload: (digest: string, sessionId: string) => `${objectKeys.directUploads(digest)}${sessionId}`,
  directUploads: (digest: string) => `${DIRECT_UPLOAD_PREFIX}${digest.replace(':', '/')}/`,
};

const SESSION_BLOB = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-./;

/**
 * The upload session a `blobs/` key is named by: `<session>` of `blobs/<session>-<nonce>`
 * (`objectKeys.sessionBlob`), else everything after `blobs/` (the session's multipart object, or
 * a finish's own object at a fresh id). Undefined for a key outside `blobs/`.
 */
export function sessionOfBlobKey(key: string): string | undefined {
  const prefix = objectKeys.blobData('');
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  return SESSION_BLOB.exec(rest)?.[1] ?? rest;
}
