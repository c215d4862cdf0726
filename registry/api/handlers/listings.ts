import { RegistryError } from '../../model/oci/errors.js';
import { MediaType } from '../../model/oci/media-types.js';
import { pageRequest } from '../pagination.js';
import { isDigest, isTag, isValidName } from '../../model/oci/grammar.js';
import { jsonResponse, nextPageLink } from '../responses.js';
import type { Endpoint } from './context.js';

/**
 * Without `n`, the catalog pages by 100 like registry:2, and tags by 1,000 (clients follow the
 * Link header); every page stays far below Lambda's 6 MB response.
 */
const DEFAULT_CATALOG_PAGE = 100;
const DEFAULT_TAG_PAGE = 1000;
const MAX_PAGE = 10_000;

/**
 * end-8: tags in lexical order, paged by `n` and `last` with a Link to the next page. One
 * Query: whether the repository exists is asked only when the page comes back empty.
 */
export const listTags: Endpoint = async ({ params, request, services }) => {
  const page = pageRequest(request.query, MAX_PAGE, isTag);
  const limit = page.limit ?? DEFAULT_TAG_PAGE;
  const result =
    limit === 0 ? { items: [] as string[], next: undefined } : await services.manifests.listTags(params.name, { limit, last: page.last });
  if (result.items.length === 0 && !(await services.manifests.repositoryExists(params.name))) {
    throw new RegistryError('NAME_UNKNOWN', 'repository name not known to registry', { detail: { name: params.name } });
  }
  const headers: Record<string, string> = {};
  if (result.next !== undefined) headers.Link = nextPageLink(`/v2/${params.name}/tags/list`, limit, result.next);
  return jsonResponse(200, { name: params.name, tags: result.items }, headers);
};

/** Lists only the repositories the caller may pull. */
export const listRepositories: Endpoint = async ({ request, services, caller }) => {
  const page = pageRequest(request.query, MAX_PAGE, isValidName);
  const limit = page.limit ?? DEFAULT_CATALOG_PAGE;
  if (limit === 0) return jsonResponse(200, { repositories: [] });
  const result = await services.manifests.listRepositories({ limit, last: page.last }, (name) => caller.isAllowed(name, 'pull'));
  const headers: Record<string, string> = {};
  if (result.next !== undefined) headers.Link = nextPageLink('/v2/_catalog', limit, result.next);
  return jsonResponse(200, { repositories: result.items }, headers);
};

/**
 * end-12: an image index of the manifests whose subject is the digest, optionally filtered,
 * paged with a Link header (`last` is the digest the previous page ended with).
 */
export const listReferrers: Endpoint = async ({ params, request, services }) => {
  const artifactType = request.query.get('artifactType') ?? undefined;
  const last = request.query.get('last') || undefined;
  if (last !== undefined && !isDigest(last)) {
    throw new RegistryError('UNSUPPORTED', 'last must be a digest', { refusal: 'badRequest', detail: { last: last.slice(0, 256) } });
  }
  const page = await services.manifests.listReferrers(params.name, params.digest, { last, artifactType });
  const headers: Record<string, string> = { 'Content-Type': MediaType.ociIndex };
  if (artifactType !== undefined) headers['OCI-Filters-Applied'] = 'artifactType';
  if (page.next !== undefined) {
    const query = new URLSearchParams({ ...(artifactType === undefined ? {} : { artifactType }), last: page.next });
    headers.Link = `</v2/${params.name}/referrers/${params.digest}?${query.toString()}>; rel="next"`;
  }
  return jsonResponse(200, { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: page.items }, headers);
};
