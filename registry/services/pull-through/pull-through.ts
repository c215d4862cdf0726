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
import type { BlobIndex } from '../../storage/blob-index.js';
import type { UploadService } from '../uploads/upload-service.js';
import { createPullThroughServices, type PullThroughServices } from './pull-through-services.js';
import type { Logger } from '../../support/logger.js';
import type { ManifestService } from '../manifests/manifest-service.js';
import { ManifestCache } from './manifest-cache.js';
import { NameResolver } from './name-resolver.js';

/** The pull-through cache as the API and the CLIs use it (docs/pull-through.md): part B's blobs and client, and names and manifests. */
export interface PullThrough extends PullThroughServices {
  names: NameResolver;
  manifests: ManifestCache;
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
  parts: { blobs: BlobIndex; uploads: UploadService; manifests: ManifestStore; manifestService: ManifestService; logger: Logger },
): PullThrough {
  const credentials = upstreamCredentialStore(config);
  const core = createPullThroughServices(config, clients, { ...parts, credentials: cachedCredentials(credentials) });
  const leases = new TagPullLeases(clients.dynamo, config.tableName);
  return {
    ...core,
    names: new NameResolver(() => core.upstreams.listCached()),
    manifests: new ManifestCache(parts.manifests, parts.manifestService, core.client, leases, parts.logger),
    credentials,
  };
}
