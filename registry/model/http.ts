/**
 * The transport-free shape of a registry request and response. The Lambda adapter and the
 * local HTTP server translate to and from these; the OCI logic sees nothing else.
 */
export interface RegistryRequest {
  method: string;
  /** The path without query string, e.g. `/v2/team/app/manifests/latest`. */
  path: string;
  query: URLSearchParams;
  /** Header names in lower case. */
  headers: Record<string, string | undefined>;
  /** The id the transport gave the request (API Gateway's, or one made up locally), for logs. */
  requestId?: string;
  /** The caller's address as the transport saw it (API Gateway's `sourceIp`, the socket's locally); never a client-sent header. */
  sourceIp?: string;
  /** The request body as a stream of chunks; absent when the request has none. */
  body?: BodyStream;
  /**
   * Where the request came in, when not the registry's own entry: `docker-mirror` is the Docker
   * Hub mirror entry (docs/pull-through.md), set by the transport (a port of its own locally; the
   * mirror distribution's header behind the front door, trusted only with the origin secret).
   */
  entry?: 'docker-mirror';
}

/** A request body: a Node stream, or the one decoded buffer of a Lambda event. */
export type BodyStream = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export interface RegistryResponse {
  status: number;
  headers: Record<string, string>;
  /** Small bodies only (JSON documents, manifests); blob bytes are never returned, they are redirected. */
  body?: Uint8Array | string;
  /** For metrics only, never sent: the size of the blob a 307 sent the client to. */
  bytesRedirected?: number;
}

/** What every transport serves: the registry, the token endpoint, the upload gateway. */
export type RegistryHandler = (request: RegistryRequest) => Promise<RegistryResponse>;
