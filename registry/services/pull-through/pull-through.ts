import { SSMClient } from '@aws-sdk/client-ssm';
import type { RegistryConfig } from '../../config/config.js';
import type { Upstream } from '../../model/pull-through/upstream.js';
import type { AwsClients } from '../../storage/aws-clients.js';
import type { ManifestStore } from '../../storage/manifest-store.js';
import { TagPullLeases } from '../../storage/tag-pull-leases.js';
import {
  FileUpstreamCredentialStore,
  SsmUpstreamCredentialStore,
  type UpstreamCredentialStore,
  type UpstreamCredentials,
} from '../../storage/upstream-credentials.js';
import { UpstreamStore } from '../../storage/upstream-store.js';
import type { Logger } from '../../support/logger.js';
import type { ManifestService } from '../manifests/manifest-service.js';
import { ManifestCache } from './manifest-cache.js';
import { NameResolver } from './name-resolver.js';
import { HttpUpstreamClient, type UpstreamClient } from './upstream-client.js';
import type { BlobIndex } from '../../storage/blob-index.js';
import type { UploadService } from '../uploads/upload-service.js';
import { createPullThroughBlobs } from './blob-copy-wiring.js';
import type { PullThroughBlobs } from './blob-copy.js';

/** The pull-through cache as the API and the CLIs use it (docs/pull-through.md). */
export interface PullThrough {
  upstreams: UpstreamStore;
  names: NameResolver;
  client: UpstreamClient & Pick<HttpUpstreamClient, 'probe'>;
  manifests: ManifestCache;
  /** Blobs of cache repositories on a link miss, and the copier's work (blob-copy.ts). */
  blobs: PullThroughBlobs;
  /** Undefined where no credential store is configured: upstreams with credentials then fail as refused. */
  credentials?: UpstreamCredentialStore;
}

/** The credential store the configuration names: SSM in AWS, the owner-only directory locally. */
export function upstreamCredentialStore(config: RegistryConfig): UpstreamCredentialStore | undefined {
  const settings = config.pullThrough;
  if (settings?.credentialsParameterPrefix) {
    return new SsmUpstreamCredentialStore(new SSMClient({ region: config.region }), settings.credentialsParameterPrefix);
  }
  if (settings?.credentialsDir) return new FileUpstreamCredentialStore(settings.credentialsDir);
  return undefined;
}

/** Credentials read once per process per `credentialsVersion` of the upstream. */
function cachedCredentials(store: UpstreamCredentialStore | undefined): (upstream: Upstream) => Promise<UpstreamCredentials | undefined> {
  const cache = new Map<string, Promise<UpstreamCredentials | undefined>>();
  return (upstream) => {
    if (!store) return Promise.resolve(undefined);
    const key = `${upstream.name} ${upstream.credentialsVersion}`;
    let credentials = cache.get(key);
    if (!credentials) {
      credentials = store.get(upstream.name);
      cache.set(key, credentials);
      credentials.catch(() => cache.delete(key));
    }
    return credentials;
  };
}

export function createPullThrough(
  config: RegistryConfig,
  clients: AwsClients,
  manifests: ManifestStore,
  manifestService: ManifestService,
  logger: Logger,
  blobParts: { blobs: BlobIndex; uploads: UploadService },
): PullThrough {
  const upstreams = new UpstreamStore(clients.dynamo, config.tableName);
  const credentials = upstreamCredentialStore(config);
  const client = new HttpUpstreamClient({ credentials: cachedCredentials(credentials), logger });
  return {
    upstreams,
    names: new NameResolver(() => upstreams.listCached()),
    client,
    manifests: new ManifestCache(manifests, manifestService, client, new TagPullLeases(clients.dynamo, config.tableName), logger),
    credentials,
    blobs: createPullThroughBlobs(config, clients, { ...blobParts, upstreams, client, logger }),
  };
}
