import type { RegistryConfig } from '../config/config.js';
import { BlobIndex, type BlobRecord } from '../storage/blob-index.js';
import { BlobObjectStore } from '../storage/blob-object-store.js';
import { blobReadsFor, type BlobReads } from '../storage/blob-reads.js';
import { ManifestStore } from '../storage/manifest-store.js';
import { ManifestService } from './manifests/manifest-service.js';
import { PolicyStore } from '../storage/policy-store.js';
import { UploadSessionStore } from '../storage/upload-session-store.js';
import type { AwsClients } from '../storage/aws-clients.js';
import { UploadService } from './uploads/upload-service.js';
import { UploadWriter } from './uploads/upload-writer.js';
import { DirectUploadService } from './uploads/direct-upload-service.js';
import { DirectUploadRecording } from './uploads/direct-upload-recording.js';
import { HealthProbe } from '../storage/health-probe.js';
import { HealthService } from './health.js';
import { auditLogFor, type AuditLog } from './audit/audit-log.js';
import { PullCounts } from '../storage/pull-counts.js';
import { PullCounter } from './events/pull-counter.js';
import { silentLogger, type Logger } from '../support/logger.js';
import { createPullThrough, type PullThrough } from './pull-through/pull-through.js';

/** Parts of 16 MiB keep a streamed upload's memory to about 32 MiB and allow blobs up to 160 GiB. */
const STREAM_PART_SIZE = 16 * 1024 * 1024;

/** Everything an endpoint may use; built once per process and shared by all requests. */
export interface RegistryServices {
  config: RegistryConfig;
  blobs: BlobIndex;
  objects: BlobObjectStore;
  blobReads: BlobReads;
  manifests: ManifestStore;
  /** Manifest reads, pushes and deletes as the API sees them. */
  manifestService: ManifestService;
  /** Retention and immutability rules (docs/policies.md). */
  policies: PolicyStore;
  uploads: UploadService;
  /** Uploads whose bytes go straight to S3 (docs/direct-push.md). */
  directUploads: DirectUploadService;
  /** Blobs the front door put straight into the bucket, recorded when needed (docs/front-door.md). */
  directUploadRecording: DirectUploadRecording;
  /** Whether both stores answer, for `GET /health`. */
  health: HealthService;
  /** Who did what (docs/audit-log.md): `audit.record(...)`. */
  audit: AuditLog;
  /** Counts manifest pulls for pull events, only when they are on (docs/events.md). */
  pullCounter?: PullCounter;
  /** The pull-through cache (docs/pull-through.md). */
  pullThrough: PullThrough;
}

export function createServices(config: RegistryConfig, clients: AwsClients, logger: Logger = silentLogger): RegistryServices {
  const objects = new BlobObjectStore(clients.s3, config.bucketName);
  const blobs = new BlobIndex(clients.dynamo, config.tableName);
  const sessions = new UploadSessionStore(clients.dynamo, config.tableName);
  const manifests = new ManifestStore(clients.dynamo, config.tableName, objects, blobs);
  const policies = new PolicyStore(clients.dynamo, config.tableName);
  const uploads = new UploadService(sessions, new UploadWriter(objects, STREAM_PART_SIZE), blobs, objects, config.uploadSessionTtlSeconds);
  const recordAndLink = (repository: string, blob: BlobRecord) => uploads.recordAndLink(repository, blob);
  const directUploadRecording = new DirectUploadRecording(objects, sessions, blobs, recordAndLink, config.frontDoor !== undefined);
  const manifestService = new ManifestService(manifests, policies, (repository, digest) => directUploadRecording.recordPending(repository, digest));
  return {
    config,
    blobs,
    objects,
    blobReads: blobReadsFor(config, objects),
    manifests,
    manifestService,
    policies,
    uploads,
    directUploads: new DirectUploadService(sessions, objects, recordAndLink, {
      ...config.directUpload,
      sessionTtlSeconds: config.uploadSessionTtlSeconds,
    }),
    directUploadRecording,
    health: new HealthService(new HealthProbe(clients.dynamo, config.tableName, clients.s3, config.bucketName)),
    audit: auditLogFor(config, clients, logger),
    pullCounter: config.events?.pullEvents
      ? new PullCounter(new PullCounts(clients.dynamo, config.tableName), logger, config.events.pullFlushSeconds)
      : undefined,
    pullThrough: createPullThrough(config, clients, { blobs, uploads, manifests, manifestService, logger }),
  };
}
