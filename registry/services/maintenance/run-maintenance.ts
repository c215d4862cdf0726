import type { RegistryConfig } from '../../config/config.js';
import { collectGarbage, type GcReport } from '../gc/index.js';
import type { GcSettings } from '../gc/settings.js';
import type { Logger } from '../../support/logger.js';
import { applyRetention, type RetentionReport } from '../policies/apply-retention.js';
import { expireCachedImages, type CacheExpiryReport } from '../pull-through/upstream-expiry.js';
import type { RegistryServices } from '../services.js';
import type { AwsClients } from '../../storage/aws-clients.js';

export interface MaintenanceReport {
  /** Pull-through cache images not pulled for their upstream's `--keep-days`. */
  cacheExpiry: CacheExpiryReport;
  retention: RetentionReport;
  gc: GcReport;
}

/**
 * One scheduled run: pull-through cache expiry (`--keep-days`) and retention rules first, so that the manifests they delete free their
 * blobs in the same run's garbage collection; then GC with whatever time is left.
 */
export async function runMaintenance(
  config: RegistryConfig,
  clients: AwsClients,
  services: RegistryServices,
  settings: GcSettings,
  deadline: number,
  logger: Logger,
): Promise<MaintenanceReport> {
  const cacheExpiry = await expireCachedImages(
    { manifests: services.manifests, upstreams: services.pullThrough.upstreams },
    { dryRun: settings.dryRun, logger, deadline },
  );
  const retention = await applyRetention(services, { dryRun: settings.dryRun, logger, deadline });
  const gc = await collectGarbage(
    { dynamo: clients.dynamo, s3: clients.s3, tableName: config.tableName, bucketName: config.bucketName },
    {
      graceSeconds: settings.graceSeconds,
      dryRun: settings.dryRun,
      scanSegments: settings.scanSegments,
      concurrency: settings.concurrency,
      deadline,
      logger,
    },
  );
  logger.info('maintenance finished', {
    // Embedded Metric Format: what each scheduled run freed, graphed and alarmed on without an agent.
    _aws: {
      Timestamp: Date.now(),
      CloudWatchMetrics: [
        {
          Namespace: 'OciRegistry',
          Dimensions: [[]],
          Metrics: [
            { Name: 'GcBlobsDeleted', Unit: 'Count' },
            { Name: 'GcBytesFreed', Unit: 'Bytes' },
            { Name: 'GcDurationMs', Unit: 'Milliseconds' },
            { Name: 'GcErrors', Unit: 'Count' },
            { Name: 'CacheTagsExpired', Unit: 'Count' },
            { Name: 'CacheManifestsExpired', Unit: 'Count' },
          ],
        },
      ],
    },
    GcBlobsDeleted: gc.blobsDeleted,
    GcBytesFreed: gc.bytesFreed,
    GcDurationMs: gc.durationMs,
    GcErrors: gc.errors,
    CacheTagsExpired: cacheExpiry.tagsExpired,
    CacheManifestsExpired: cacheExpiry.manifestsExpired,
  });
  return { cacheExpiry, retention, gc };
}
