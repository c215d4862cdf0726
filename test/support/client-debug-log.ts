/**
 * Reads the `--debug` / `--log-level=debug` output of containers/image clients
 * (skopeo, podman), which logs every HTTP request it makes and what it decided
 * about each blob. Formats checked against skopeo 1.9 and podman 4.3.
 */

export interface LoggedRequest {
  method: string;
  url: string;
}

const REQUEST_LINE = /msg="(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+?)"/g;
const UPLOADED_LINE = /msg="Upload of layer (sha256:[0-9a-f]{64}) complete"/g;
const SKIPPED_LINE = /msg="Skipping blob (sha256:[0-9a-f]{64}) \(already present\)/g;

/** Every HTTP request the client logged, in order. */
export function loggedRequests(log: string): LoggedRequest[] {
  return [...log.matchAll(REQUEST_LINE)].map(([, method, url]) => ({ method: method!, url: url! }));
}

/** Blobs (layers and config) whose bytes the client sent to the registry. */
export function uploadedBlobs(log: string): string[] {
  return unique([...log.matchAll(UPLOADED_LINE)].map(([, digest]) => digest!));
}

/** Blobs the client did not send because the destination had them (found, or mounted). */
export function skippedBlobs(log: string): string[] {
  return unique([...log.matchAll(SKIPPED_LINE)].map(([, digest]) => digest!));
}

/** Cross-repository mount requests: `POST /v2/<name>/blobs/uploads/?from=<repo>&mount=<digest>`. */
export function mountRequests(log: string): Array<{ into: string; from: string; digest: string }> {
  return loggedRequests(log)
    .filter((request) => request.method === 'POST' && request.url.includes('mount='))
    .map((request) => {
      const url = new URL(request.url);
      const into = url.pathname.replace(/^\/v2\//, '').replace(/\/blobs\/uploads\/?$/, '');
      return { into, from: url.searchParams.get('from') ?? '', digest: url.searchParams.get('mount') ?? '' };
    });
}

/** The requests that touched a given path fragment, e.g. a repository name; for error messages. */
export function requestsMentioning(log: string, fragment: string): string[] {
  return loggedRequests(log)
    .filter((request) => request.url.includes(fragment))
    .map((request) => `${request.method} ${request.url}`);
}

function unique(values: string[]): string[] {
  return [...new Set(values)].sort();
}
