/**
 * Direct HTTP looks at a registry, for checking what a client left behind
 * without going through another client.
 */

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
