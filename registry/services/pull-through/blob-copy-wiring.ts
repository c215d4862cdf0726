import type { RegistryConfig } from '../../config/config.js';
import type { AwsClients } from '../../storage/aws-clients.js';
import { AsyncInvoker } from '../../storage/copier-invoker.js';
import { PullLeaseStore } from '../../storage/pull-lease-store.js';
import { PullThroughBlobs, type CopyDispatch, type PullThroughBlobDeps } from './blob-copy.js';
import { inProcessDispatch, invokingDispatch } from './copy-dispatcher.js';

/**
 * PullThroughBlobs with its dispatcher: the copier function when BLOB_COPIER_FUNCTION is set (AWS,
 * and the deployed local shape through LAMBDA_ENDPOINT), else an in-process queue (`npm start`).
 */
export function createPullThroughBlobs(
  config: RegistryConfig,
  clients: AwsClients,
  parts: Omit<PullThroughBlobDeps, 'leases' | 'dispatch' | 'settings'>,
): PullThroughBlobs {
  const copierFunction = config.blobCopy?.copierFunction;
  let blobs: PullThroughBlobs | undefined;
  const dispatch: CopyDispatch = copierFunction
    ? invokingDispatch(AsyncInvoker.create(copierFunction, { region: config.region, endpoint: config.blobCopy?.lambdaEndpoint }))
    : inProcessDispatch((request, deadline) => blobs!.copy(request, deadline), parts.logger);
  blobs = new PullThroughBlobs({
    ...parts,
    leases: new PullLeaseStore(clients.dynamo, config.tableName),
    dispatch,
    settings: config.blobCopy?.waitMs === undefined ? {} : { waitMs: config.blobCopy.waitMs },
  });
  return blobs;
}
