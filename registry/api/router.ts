import { RegistryError } from '../model/oci/errors.js';
import { assertDigest, assertName } from '../model/oci/grammar.js';
import type { Endpoint, RouteParams } from './handlers/context.js';
import type { AccessRequirement } from '../services/auth/authorizer.js';
import { checkApiVersion } from './handlers/base.js';
import { checkHealth } from './handlers/health.js';
import { deleteBlob, getBlob, headBlob } from './handlers/blobs.js';
import { deleteManifest, getManifest, headManifest, putManifest } from './handlers/manifests.js';
import { listReferrers, listRepositories, listTags } from './handlers/listings.js';
import { cancelUpload, finishUpload, getUploadStatus, patchUpload, startUpload } from './handlers/uploads.js';
import { completeDirectUpload, directPartUrls, pollDirectUpload, startDirectUpload } from './handlers/direct-uploads.js';

/** What a method of a route needs the caller to hold; `none` is open to anyone, logged in or not. */
type Need = 'none' | 'login' | 'catalog' | 'pull' | 'push' | 'delete';

interface Route {
  /** Captures `name` first (greedy up to the last resource segment), then the resource id. */
  pattern: RegExp;
  param?: 'reference' | 'digest' | 'uuid';
  methods: Record<string, [Endpoint, Need]>;
}

/** Order matters: `blobs/uploads/` must be tried before `blobs/<digest>`. */
const ROUTES: Route[] = [
  { pattern: /^\/health$/, methods: { GET: [checkHealth, 'none'], HEAD: [checkHealth, 'none'] } },
  { pattern: /^\/v2\/?$/, methods: { GET: [checkApiVersion, 'login'], HEAD: [checkApiVersion, 'login'] } },
  { pattern: /^\/v2\/_catalog$/, methods: { GET: [listRepositories, 'catalog'] } },
  { pattern: /^\/v2\/(.+)\/tags\/list$/, methods: { GET: [listTags, 'pull'] } },
  {
    pattern: /^\/v2\/(.+)\/manifests\/([^/]+)$/,
    param: 'reference',
    methods: { GET: [getManifest, 'pull'], HEAD: [headManifest, 'pull'], PUT: [putManifest, 'push'], DELETE: [deleteManifest, 'delete'] },
  },
  { pattern: /^\/v2\/(.+)\/blobs\/uploads\/?$/, methods: { POST: [startUpload, 'push'] } },
  // The direct-upload extension (docs/direct-push.md): under a session, before the session itself.
  {
    pattern: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)\/direct$/,
    param: 'uuid',
    methods: { POST: [startDirectUpload, 'push'], PUT: [completeDirectUpload, 'push'], GET: [pollDirectUpload, 'push'] },
  },
  { pattern: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)\/direct\/parts$/, param: 'uuid', methods: { GET: [directPartUrls, 'push'] } },
  {
    pattern: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/,
    param: 'uuid',
    methods: {
      GET: [getUploadStatus, 'push'],
      PATCH: [patchUpload, 'push'],
      PUT: [finishUpload, 'push'],
      DELETE: [cancelUpload, 'push'],
    },
  },
  {
    pattern: /^\/v2\/(.+)\/blobs\/([^/]+)$/,
    param: 'digest',
    methods: { GET: [getBlob, 'pull'], HEAD: [headBlob, 'pull'], DELETE: [deleteBlob, 'delete'] },
  },
  { pattern: /^\/v2\/(.+)\/referrers\/([^/]+)$/, param: 'digest', methods: { GET: [listReferrers, 'pull'] } },
];

export interface RouteMatch {
  endpoint: Endpoint;
  params: RouteParams;
  requirement: AccessRequirement;
}

/** Finds the endpoint for a request and checks the path's name and digest against the grammar. */
export function route(method: string, path: string): RouteMatch {
  for (const candidate of ROUTES) {
    const match = candidate.pattern.exec(path);
    if (!match) continue;
    const handling = candidate.methods[method];
    if (!handling) {
      throw new RegistryError('UNSUPPORTED', `${method} is not supported here`, {
        allowedMethods: Object.keys(candidate.methods),
      });
    }
    const params: RouteParams = { name: '', reference: '', digest: '', uuid: '' };
    if (match[1] !== undefined) params.name = assertName(match[1]);
    if (candidate.param) params[candidate.param] = match[2]!;
    if (candidate.param === 'digest') assertDigest(params.digest);
    const [endpoint, need] = handling;
    return { endpoint, params, requirement: requirementOf(need, params.name) };
  }
  throw new RegistryError('UNSUPPORTED', 'no such API endpoint', { refusal: 'noEndpoint', detail: { path } });
}

function requirementOf(need: Need, name: string): AccessRequirement {
  if (need === 'none' || need === 'login' || need === 'catalog') return { kind: need };
  return { kind: 'repository', name, action: need };
}
