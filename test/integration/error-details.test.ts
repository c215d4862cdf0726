/**
 * What an error's detail echoes of the request, as a user typing a URL meets it: a tag or digest
 * is given back as the user meant it (`bad tag`), not percent-encoded (`bad%20tag`), in both
 * local shapes: the streaming server and the emulation of API Gateway, which decodes the path
 * before Lambda sees it as the HTTP API does.
 */
import { describe, expect, it } from 'vitest';
import { useLocalStack } from './local-stack.js';

async function firstError(response: Response): Promise<{ code: string; detail: Record<string, unknown> }> {
  return ((await response.json()) as { errors: { code: string; detail: Record<string, unknown> }[] }).errors[0]!;
}

describe.each([
  ['the streaming server', false],
  ['the API Gateway emulation', true],
] as const)('error details on %s', (_shape, apiGateway) => {
  const stack = useLocalStack(`error-details-${apiGateway ? 'apigw' : 'node'}`, { apiGateway });

  it('give back an invalid tag or digest decoded', async () => {
    const put = await stack.http.fetch('/v2/team/app/manifests/bad%20tag', {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: '{}',
    });
    expect(put.status).toBe(400);
    expect(await firstError(put)).toMatchObject({ code: 'MANIFEST_INVALID', detail: { tag: 'bad tag' } });

    const get = await stack.http.fetch('/v2/team/app/manifests/b%C3%A4d%20tag');
    expect(await firstError(get)).toMatchObject({ code: 'MANIFEST_UNKNOWN', detail: { reference: 'bäd tag' } });

    const blob = await stack.http.fetch('/v2/team/app/blobs/sha256:not%20hex');
    expect(await firstError(blob)).toMatchObject({ code: 'DIGEST_INVALID', detail: { digest: 'sha256:not hex' } });
  });
});
