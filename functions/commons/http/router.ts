import { RegistryError } from '../oci/errors.js';
import { assertDigest, assertName } from '../oci/grammar.js';
import type { Endpoint, RouteParams } from '../handlers/context.js';
import { checkApiVersion } from '../handlers/base.js';
import { deleteBlob, getBlob, headBlob } from '../handlers/blobs.js';
import { deleteManifest, getManifest, headManifest, putManifest } from '../handlers/manifests.js';
import { listReferrers, listRepositories, listTags } from '../handlers/listings.js';
import { cancelUpload, finishUpload, getUploadStatus, patchUpload, startUpload } from '../handlers/uploads.js';

interface Route {
  /** Captures `name` first (greedy up to the last resource segment), then the resource id. */
  pattern: RegExp;
  param?: 'reference' | 'digest' | 'uuid';
  methods: Record<string, Endpoint>;
}

/** Order matters: `blobs/uploads/` must be tried before `blobs/<digest>`. */
const ROUTES: Route[] = [
  { pattern: /^\/v2\/?$/, methods: { GET: checkApiVersion, HEAD: checkApiVersion } },
  { pattern: /^\/v2\/_catalog$/, methods: { GET: listRepositories } },
  { pattern: /^\/v2\/(.+)\/tags\/list$/, methods: { GET: listTags } },
  {
    pattern: /^\/v2\/(.+)\/manifests\/([^/]+)$/,
    param: 'reference',
    methods: { GET: getManifest, HEAD: headManifest, PUT: putManifest, DELETE: deleteManifest },
  },
  { pattern: /^\/v2\/(.+)\/blobs\/uploads\/?$/, methods: { POST: startUpload } },
  {
    pattern: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/,
    param: 'uuid',
    methods: { GET: getUploadStatus, PATCH: patchUpload, PUT: finishUpload, DELETE: cancelUpload },
  },
  { pattern: /^\/v2\/(.+)\/blobs\/([^/]+)$/, param: 'digest', methods: { GET: getBlob, HEAD: headBlob, DELETE: deleteBlob } },
  { pattern: /^\/v2\/(.+)\/referrers\/([^/]+)$/, param: 'digest', methods: { GET: listReferrers } },
];

export interface RouteMatch {
  endpoint: Endpoint;
  params: RouteParams;
}

/** Finds the endpoint for a request and checks the path's name and digest against the grammar. */
export function route(method: string, path: string): RouteMatch {
  for (const candidate of ROUTES) {
    const match = candidate.pattern.exec(path);
    if (!match) continue;
    const endpoint = candidate.methods[method];
    if (!endpoint) {
      throw new RegistryError('UNSUPPORTED', `${method} is not supported here`, {
        headers: { Allow: Object.keys(candidate.methods).join(', ') },
      });
    }
    const params: RouteParams = { name: '', reference: '', digest: '', uuid: '' };
    if (match[1] !== undefined) params.name = assertName(match[1]);
    if (candidate.param) params[candidate.param] = match[2]!;
    if (candidate.param === 'digest') assertDigest(params.digest);
    return { endpoint, params };
  }
  throw new RegistryError('UNSUPPORTED', 'no such API endpoint', { status: 404, detail: { path } });
}
