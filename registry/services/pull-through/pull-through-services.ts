import type { RegistryConfig } from '../../config/config.js';
import type { AwsClients } from '../../storage/aws-clients.js';
import type { BlobIndex } from '../../storage/blob-index.js';
import { AsyncInvoker } from '../../storage/copier-invoker.js';
import { PullLeaseStore } from '../../storage/pull-lease-store.js';
import type { UpstreamCredentials } from '../../storage/upstream-credentials.js';
import { UpstreamStore } from '../../storage/upstream-store.js';
import type { Upstream } from '../../model/pull-through/upstream.js';
import type { Logger } from '../../support/logger.js';
import type { UploadService } from '../uploads/upload-service.js';
import { PullThroughBlobs, type CopyDispatch } from './blob-copy.js';
import { inProcessDispatch, invokingDispatch } from './copy-dispatcher.js';
import { HttpUpstreamClient, type UpstreamClient } from './upstream-client.js';

/** The pull-through cache's parts (docs/pull-through.md). */
export interface PullThroughServices {
  upstreams: UpstreamStore;
  client: UpstreamClient;
  /** Blobs of cache repositories on a link miss, and the copier's work. */
  blobs: PullThroughBlobs;
}

export function createPullThroughServices(
  config: RegistryConfig,
  clients: AwsClients,
  parts: {
    blobs: BlobIndex;
    uploads: UploadService;
    logger: Logger;
    credentials?: (upstream: Upstream) => Promise<UpstreamCredentials | undefined>;
  },
): PullThroughServices {
  const upstreams = new UpstreamStore(clients.dynamo, config.tableName, config.pullThrough?.upstreamsCacheMs);
  const client = new HttpUpstreamClient({ credentials: parts.credentials ?? (async () => undefined), logger: parts.logger });
  let blobs: PullThroughBlobs | undefined;
  const copierFunction = config.blobCopy?.copierFunction;
  const dispatch: CopyDispatch = copierFunction
    ? invokingDispatch(AsyncInvoker.create(copierFunction, { region: config.region, endpoint: config.blobCopy?.lambdaEndpoint }))
    : inProcessDispatch((request, deadline) => blobs!.copy(request, deadline), parts.logger);
  blobs = new PullThroughBlobs({
    blobs: parts.blobs,
    uploads: parts.uploads,
    leases: new PullLeaseStore(clients.dynamo, config.tableName),
    upstreams,
    client,
    dispatch,
    logger: parts.logger,
    settings: config.blobCopy?.waitMs === undefined ? {} : { waitMs: config.blobCopy.waitMs },
  });
  return { upstreams, client, blobs };
}
