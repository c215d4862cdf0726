import { createHash } from 'node:crypto';

/**
 * Raw-HTTP helpers for driving a registry in tests exactly as the spec describes each call, and
 * for checking what a client left behind without going through another client.
 */
export function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export async function errorCode(response: Response): Promise<string | undefined> {
  const body = (await response.json()) as { errors?: { code: string }[] };
  return body.errors?.[0]?.code;
}

export class RegistryHttp {
  /** `headers` go on every request, e.g. an Authorization header with a bearer token. */
  constructor(
    readonly baseUrl: string,
    private readonly headers: Record<string, string> = {},
  ) {}

  fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const url = path.startsWith('http') ? path : `${this.baseUrl}${path}`;
    return fetch(url, { redirect: 'manual', ...init, headers: { ...this.headers, ...(init.headers as Record<string, string>) } });
  }

  /** Monolithic upload: POST with `?digest=` and the whole blob. */
  async pushBlob(name: string, bytes: Uint8Array | string): Promise<string> {
    const digest = sha256(bytes);
    const response = await this.fetch(`/v2/${name}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: bytes });
    if (response.status !== 201) throw new Error(`blob push answered ${response.status}: ${await response.text()}`);
    return digest;
  }

  async openUpload(name: string): Promise<string> {
    const response = await this.fetch(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
    if (response.status !== 202) throw new Error(`upload open answered ${response.status}`);
    return response.headers.get('location')!;
  }

  putManifest(name: string, reference: string, manifest: object | string, mediaType = OCI_MANIFEST): Promise<Response> {
    const body = typeof manifest === 'string' ? manifest : JSON.stringify(manifest);
    return this.fetch(`/v2/${name}/manifests/${reference}`, { method: 'PUT', headers: { 'Content-Type': mediaType }, body });
  }

  /** Pushes a config and one layer, then an image manifest under `tag`; answers the manifest. */
  async pushImage(
    name: string,
    tag: string,
    seed: string,
    extra: Record<string, unknown> = {},
  ): Promise<{ digest: string; bytes: string; layer: string }> {
    const config = await this.pushBlob(name, `{"architecture":"amd64","os":"linux","seed":"${seed}"}`);
    const layer = await this.pushBlob(name, `layer bytes of ${seed}`);
    const manifest = imageManifest(config, layer, extra);
    const response = await this.putManifest(name, tag, manifest);
    if (response.status !== 201) throw new Error(`manifest push answered ${response.status}: ${await response.text()}`);
    return { digest: sha256(manifest), bytes: manifest, layer };
  }
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export function imageManifest(configDigest: string, layerDigest: string, extra: Record<string, unknown> = {}, configSize = 0, layerSize = 0): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: configSize },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layerSize }],
    ...extra,
  });
}

export interface BlobHead {
  status: number;
  contentLength: number | null;
  dockerContentDigest: string | null;
}

export async function headBlob(registryUrl: string, repository: string, digest: string): Promise<BlobHead> {
  const response = await fetch(`${registryUrl}/v2/${repository}/blobs/${digest}`, { method: 'HEAD', redirect: 'follow' });
  const length = response.headers.get('content-length');
  return {
    status: response.status,
    contentLength: length === null ? null : Number(length),
    dockerContentDigest: response.headers.get('docker-content-digest'),
  };
}
