/**
 * The manifest handlers alone: HTTP in, calls on the manifest service, HTTP out. The service is
 * a stand-in, so these tests say what the handler translates, not what storage does.
 */
import { describe, expect, it } from 'vitest';
import { deleteManifest, getManifest, putManifest } from '../../../../registry/api/handlers/manifests.js';
import type { EndpointContext } from '../../../../registry/api/handlers/context.js';
import type { RegistryServices } from '../../../../registry/services/services.js';
import type { ManifestPush, ManifestService } from '../../../../registry/services/manifests/manifest-service.js';
import type { ParsedManifest } from '../../../../registry/model/oci/manifest.js';
import { RegistryError } from '../../../../registry/model/oci/errors.js';

const DIGEST = `sha256:${'d'.repeat(64)}`;
const SUBJECT = `sha256:${'5'.repeat(64)}`;
const STORED = { digest: DIGEST, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 2, bytes: new TextEncoder().encode('{}') };

function context(method: string, reference: string, service: Partial<ManifestService>, query = ''): EndpointContext {
  const body = method === 'PUT' ? [new TextEncoder().encode('{}')] : undefined;
  return {
    request: {
      method,
      path: `/v2/team/app/manifests/${reference}`,
      query: new URLSearchParams(query),
      headers: { 'content-type': STORED.mediaType },
      body,
    },
    caller: {} as EndpointContext['caller'],
    params: { name: 'team/app', reference, digest: '', uuid: '' },
    services: { manifestService: service as ManifestService } as RegistryServices,
  };
}

async function refusal(promise: Promise<unknown>): Promise<RegistryError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof RegistryError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('manifest handlers', () => {
  it('GET answers the stored bytes with their media type, length and digest', async () => {
    const response = await getManifest(
      context('GET', 'v1', { find: async (_repository, reference) => (reference.tag === 'v1' ? STORED : undefined) }),
    );
    expect(response).toMatchObject({
      status: 200,
      headers: { 'Content-Type': STORED.mediaType, 'Content-Length': '2', 'Docker-Content-Digest': DIGEST },
      body: STORED.bytes,
    });
  });

  it('a reference that is neither tag nor digest is MANIFEST_UNKNOWN without asking the service', async () => {
    const error = await refusal(getManifest(context('GET', '.INVALID', { find: () => Promise.reject(new Error('must not be called')) })));
    expect([error.code, error.status]).toEqual(['MANIFEST_UNKNOWN', 404]);
  });

  it('PUT hands the service the body, the digest pushed by and every ?tag=, and answers OCI-Tag and OCI-Subject', async () => {
    let pushed: ManifestPush | undefined;
    const push = async (_repository: string, manifestPush: ManifestPush) => {
      pushed = manifestPush;
      return { digest: DIGEST, subject: SUBJECT } as ParsedManifest;
    };
    const response = await putManifest(context('PUT', DIGEST, { push }, 'tag=a&tag=b&tag=a'));
    expect(pushed).toMatchObject({ digest: DIGEST, tags: ['a', 'b'], contentType: STORED.mediaType });
    expect(Buffer.from(pushed!.bytes).toString()).toBe('{}');
    expect(response).toMatchObject({
      status: 201,
      headers: { Location: `/v2/team/app/manifests/${DIGEST}`, 'Docker-Content-Digest': DIGEST, 'OCI-Subject': SUBJECT, 'OCI-Tag': 'a, b' },
    });
  });

  it('PUT refuses an invalid ?tag= before reading anything', async () => {
    const error = await refusal(putManifest(context('PUT', DIGEST, { push: () => Promise.reject(new Error('must not be called')) }, 'tag=.bad')));
    expect(error.code).toBe('MANIFEST_INVALID');
  });

  it('DELETE answers 202, or MANIFEST_UNKNOWN when the service deleted nothing', async () => {
    expect((await deleteManifest(context('DELETE', 'v1', { delete: async () => true }))).status).toBe(202);
    expect((await refusal(deleteManifest(context('DELETE', 'v1', { delete: async () => false })))).code).toBe('MANIFEST_UNKNOWN');
  });
});
