import { RegistryError } from '../oci/errors.js';
import { MediaType } from '../oci/media-types.js';
import { pageRequest } from '../oci/pagination.js';
import { jsonResponse, nextPageLink } from '../http/responses.js';
import type { Endpoint } from './context.js';

/** Without `n`, the catalog pages by 100 like registry:2; tags come all at once, as clients expect. */
const DEFAULT_CATALOG_PAGE = 100;
const MAX_PAGE = 10_000;

/** end-8: tags in lexical order, paged by `n` and `last` with a Link to the next page. */
export const listTags: Endpoint = async ({ params, request, services }) => {
  const page = pageRequest(request.query, MAX_PAGE);
  if (!(await services.manifests.repositoryExists(params.name))) {
    throw new RegistryError('NAME_UNKNOWN', 'repository name not known to registry', { detail: { name: params.name } });
  }
  if (page.limit === 0) return jsonResponse(200, { name: params.name, tags: [] });
  const result = await services.manifests.listTags(params.name, page);
  const headers: Record<string, string> = {};
  if (result.next !== undefined && page.limit !== undefined) {
    headers.Link = nextPageLink(`/v2/${params.name}/tags/list`, page.limit, result.next);
  }
  return jsonResponse(200, { name: params.name, tags: result.items }, headers);
};

/** Lists only the repositories the caller may pull. */
export const listRepositories: Endpoint = async ({ request, services, caller }) => {
  const page = pageRequest(request.query, MAX_PAGE);
  const limit = page.limit ?? DEFAULT_CATALOG_PAGE;
  if (limit === 0) return jsonResponse(200, { repositories: [] });
  const result = await services.manifests.listRepositories({ limit, last: page.last }, (name) => caller.isAllowed(name, 'pull'));
  const headers: Record<string, string> = {};
  if (result.next !== undefined) headers.Link = nextPageLink('/v2/_catalog', limit, result.next);
  return jsonResponse(200, { repositories: result.items }, headers);
};

/** end-12: an image index of the manifests whose subject is the digest, optionally filtered. */
export const listReferrers: Endpoint = async ({ params, request, services }) => {
  const artifactType = request.query.get('artifactType');
  const all = await services.manifests.listReferrers(params.name, params.digest);
  const manifests = artifactType === null ? all : all.filter((entry) => entry.artifactType === artifactType);
  const headers: Record<string, string> = { 'Content-Type': MediaType.ociIndex };
  if (artifactType !== null) headers['OCI-Filters-Applied'] = 'artifactType';
  return jsonResponse(200, { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }, headers);
};
