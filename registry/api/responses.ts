import type { RegistryResponse } from '../model/http.js';

export function jsonResponse(status: number, document: unknown, headers: Record<string, string> = {}): RegistryResponse {
  const body = JSON.stringify(document);
  return {
    status,
    headers: { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), ...headers },
    body,
  };
}

export function emptyResponse(status: number, headers: Record<string, string> = {}): RegistryResponse {
  return { status, headers: { 'Content-Length': '0', ...headers } };
}

/** RFC 8288 link to the next page, as `tags/list` and `_catalog` answer it. */
export function nextPageLink(path: string, limit: number, last: string): string {
  const query = new URLSearchParams({ n: String(limit), last });
  return `<${path}?${query.toString()}>; rel="next"`;
}
