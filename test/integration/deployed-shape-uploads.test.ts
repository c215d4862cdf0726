/**
 * Uploads through the local deployed shape (REGISTRY_SHAPE=aws), in raw HTTP as clients send
 * them: the front door function in its cloudfront-js-2.0 sandbox, the S3 stand-in verifying the
 * checksum, the Lambda@Edge origin-response, the bundled registry function behind API Gateway.
 *
 * - a monolithic PUT with a valid ticket lands in S3 at the session's direct/ key: 201, the
 *   blob's Location and Docker-Content-Digest, and nothing went through API Gateway;
 * - a PUT whose body is not the digest's stores nothing and answers DIGEST_INVALID;
 * - forged, expired and other-repository tickets are refused before anything is stored;
 * - a PATCH over API Gateway's limit gets an OCI error naming the limit, not a bare 413;
 * - every URL the registry hands out names the one host, and the API's own endpoint is no way in;
 * - the function ran as Lambda runs it: one cold start for a run of sequential requests.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_CREDENTIALS } from '../../scripts/local/local-credentials.js';
import { objectKeys } from '../../registry/storage/keys.js';
import { UploadTickets } from '../../registry/services/uploads/upload-tickets.js';
import { sha256 } from '../support/registry-http.js';
import { useDeployedShape } from '../support/deployed-shape.js';

const MiB = 1024 * 1024;

describe('uploads through the local deployed shape', () => {
  const deployed = useDeployedShape('deployed-shape-uploads');
  let s3: S3Client;

  beforeAll(() => {
    s3 = new S3Client({
      region: deployed.shape.config.region,
      endpoint: deployed.shape.config.s3Endpoint,
      credentials: LOCAL_CREDENTIALS,
      forcePathStyle: true,
    });
  });

  afterAll(() => s3?.destroy());

  /** The session Location the registry hands out, with `digest` added as Go clients add it (`%3A`). */
  async function putTarget(name: string, digest: string): Promise<{ url: URL; session: string }> {
    const location = await deployed.http.openUpload(name);
    const url = new URL(location, deployed.shape.url);
    url.searchParams.set('digest', digest);
    return { url, session: url.pathname.split('/').pop()! };
  }

  async function directObjects(digest: string): Promise<string[]> {
    const { Contents } = await s3.send(
      new ListObjectsV2Command({ Bucket: deployed.shape.config.bucketName, Prefix: objectKeys.directUploads(digest) }),
    );
    return (Contents ?? []).map((object) => object.Key!);
  }

  function errorOf(body: string): { code: string; message: string } {
    return (JSON.parse(body) as { errors: { code: string; message: string }[] }).errors[0]!;
  }

  it('hands out upload Locations on the one public host, with a ticket', async () => {
    const location = new URL(await deployed.http.openUpload('shape/hosts'), deployed.shape.url);
    expect(location.host).toBe(new URL(deployed.shape.url).host);
    expect(location.searchParams.get('ticket')).toMatch(/^v1\./);
  });

  it('sends an 8 MiB monolithic PUT straight to S3, where the checksum is verified, and answers as the spec says', async () => {
    const refusalsBefore = deployed.refusals.length;
    const body = randomBytes(8 * MiB);
    const digest = sha256(body);
    const { url, session } = await putTarget('shape/direct', digest);
    const response = await fetch(url, { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' } });
    expect(response.status).toBe(201);
    expect(response.headers.get('docker-content-digest')).toBe(digest);
    const blobLocation = response.headers.get('location')!;
    expect(blobLocation).toBe(`/v2/shape/direct/blobs/${digest}`);
    expect(new URL(blobLocation, deployed.shape.url).host).toBe(new URL(deployed.shape.url).host);
    // S3's own headers do not reach the client.
    expect(response.headers.get('etag')).toBeNull();
    expect(await directObjects(digest)).toEqual([objectKeys.directUpload(digest, session)]);
    // The body never went through API Gateway (which would have refused 8 MiB).
    expect(deployed.refusals.slice(refusalsBefore)).toEqual([]);
  });

  it('refuses a monolithic PUT whose body is not the digest with DIGEST_INVALID, and stores nothing', async () => {
    const claimed = sha256(randomBytes(1024));
    const { url } = await putTarget('shape/lying', claimed);
    const response = await fetch(url, { method: 'PUT', body: randomBytes(6 * MiB) });
    expect(response.status).toBe(400);
    expect(errorOf(await response.text()).code).toBe('DIGEST_INVALID');
    expect(await directObjects(claimed)).toEqual([]);
  });

  it('refuses forged, expired and other-repository tickets before anything is stored', async () => {
    const body = randomBytes(64 * 1024);
    const digest = sha256(body);
    const { url, session } = await putTarget('shape/tickets', digest);
    const secret = deployed.shape.kvs.get('ticket-secrets')!;
    const put = async (ticket: string) => {
      const target = new URL(url);
      target.searchParams.set('ticket', ticket);
      const response = await fetch(target, { method: 'PUT', body });
      return { status: response.status, ...errorOf(await response.text()) };
    };

    const valid = url.searchParams.get('ticket')!;
    const [version, claims] = valid.split('.');
    const forgedMac = createHmac('sha256', 'not the secret').update(`${version}.${claims}`).digest('base64url');
    expect(await put(`${version}.${claims}.${forgedMac}`)).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });

    const expired = new UploadTickets([secret], 1, () => Date.now() - 10_000).issue('shape/tickets', session);
    expect(await put(expired)).toMatchObject({ status: 401, code: 'UNAUTHORIZED', message: expect.stringContaining('expired') });

    const otherRepository = new UploadTickets([secret], 3600).issue('shape/other', session);
    expect(await put(otherRepository)).toMatchObject({ status: 403, code: 'DENIED' });

    expect(await directObjects(digest)).toEqual([]);
  });

  it('answers a PATCH over API Gateway’s limit with an OCI error naming the limit and the ways out, not a bare 413', async () => {
    const location = new URL(await deployed.http.openUpload('shape/patch'), deployed.shape.url);
    const response = await fetch(location, { method: 'PATCH', body: randomBytes(11 * MiB), headers: { 'content-type': 'application/octet-stream' } });
    expect(response.status).toBe(413);
    const error = errorOf(await response.text());
    expect(error.code).toBe('SIZE_INVALID');
    expect(error.message).toMatch(/4\.4 MiB/);
    expect(error.message).toMatch(/upload gateway/);
    expect(deployed.refusals.some((refusal) => refusal.reason === 'request-too-large')).toBe(true);
  });

  it('refuses requests to the API’s own endpoint, which lack the origin secret the front door sets', async () => {
    const response = await fetch(`${deployed.shape.apiUrl}/v2/`);
    expect(response.status).toBe(403);
    const error = errorOf(await response.text());
    expect(error.code).toBe('DENIED');
    expect(error.message).toContain(deployed.shape.url);
  });

  it('runs the registry function as Lambda does: initialised once, then one invocation at a time', async () => {
    const before = deployed.shape.functions.registryApi!.coldStarts();
    for (let i = 0; i < 5; i++) expect((await deployed.http.fetch('/v2/')).status).toBe(200);
    expect(deployed.shape.functions.registryApi!.coldStarts()).toBe(before);
    expect(before).toBeGreaterThanOrEqual(1);
  });
});
