/**
 * What each upload request costs in DynamoDB and S3 calls (issue 12), counted by the SDK
 * middleware of registry/storage/call-counter.ts against the local stand-ins, and that the
 * cheaper paths still refuse a wrong digest on every way a blob can arrive.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { expectStatus, useCallCountingStack } from '../support/call-counting.js';

const MiB = 1024 * 1024;
const sha256 = (...parts: Uint8Array[]) => `sha256:${createHash('sha256').update(Buffer.concat(parts)).digest('hex')}`;
const WRONG = `sha256:${'0'.repeat(64)}`;

const stack = useCallCountingStack('upload-calls');
const { callsOf } = stack;

const patch = (location: string, body: Uint8Array, range?: [number, number]) =>
  stack.http.fetch(location, { method: 'PATCH', body, headers: range ? { 'Content-Range': `${range[0]}-${range[1]}` } : {} });
const finish = (location: string, digest: string, body?: Uint8Array) =>
  stack.http.fetch(`${location}${location.includes('?') ? '&' : '?'}digest=${digest}`, { method: 'PUT', ...(body ? { body } : {}) });

/** Pulls the blob through its 307 and answers the digest of what came back. */
async function pulled(name: string, digest: string): Promise<string> {
  const redirect = await expectStatus(stack.http.fetch(`/v2/${name}/blobs/${digest}`), 307);
  return sha256(Buffer.from(await (await fetch(redirect.headers.get('location')!)).arrayBuffer()));
}

describe('the calls of an upload', () => {
  it('a whole-body PATCH of 1 MiB is one read and one write; its finish one read and one transaction, the PATCH object becoming the blob', async () => {
    const body = randomBytes(MiB);
    const location = await stack.http.openUpload('calls/small');
    let next = '';
    expect(
      await callsOf(async () => {
        next = (await expectStatus(patch(location, body), 202)).headers.get('location')!;
      }),
    ).toEqual({ 'DynamoDB.GetItem': 1, 'DynamoDB.PutItem': 1, 'S3.PutObject': 1 });
    // The PATCH wrote its bytes where a blob lives: the finish records that object, no copy, no delete.
    expect(await callsOf(() => expectStatus(finish(next, sha256(body)), 201))).toEqual({
      'DynamoDB.GetItem': 1,
      'DynamoDB.TransactWriteItems': 1,
    });
    expect(await pulled('calls/small', sha256(body))).toBe(sha256(body));
  });

  it('a whole-body PATCH of 12 MiB puts its object together itself, and its finish is one read and one transaction', async () => {
    const body = randomBytes(12 * MiB);
    const location = await stack.http.openUpload('calls/large');
    let next = '';
    expect(
      await callsOf(async () => {
        next = (await expectStatus(patch(location, body), 202)).headers.get('location')!;
      }),
    ).toEqual({ 'DynamoDB.GetItem': 1, 'DynamoDB.PutItem': 1, 'S3.CreateMultipartUpload': 1, 'S3.UploadPart': 1, 'S3.CompleteMultipartUpload': 1 });
    // Its parts' ETags never reach the session: the PATCH knew them, and completed the upload.
    expect(await callsOf(() => expectStatus(finish(next, sha256(body)), 201))).toEqual({
      'DynamoDB.GetItem': 1,
      'DynamoDB.TransactWriteItems': 1,
    });
    expect(await pulled('calls/large', sha256(body))).toBe(sha256(body));
  });

  it('POST + monolithic PUT of 1 MiB is three DynamoDB calls and one PutObject; POST ?digest= one transaction and one PutObject', async () => {
    const body = randomBytes(MiB);
    expect(
      await callsOf(async () => {
        const location = await stack.http.openUpload('calls/mono');
        await expectStatus(finish(location, sha256(body), body), 201);
      }),
    ).toEqual({ 'DynamoDB.PutItem': 1, 'DynamoDB.GetItem': 1, 'DynamoDB.TransactWriteItems': 1, 'S3.PutObject': 1 });
    const whole = randomBytes(MiB);
    expect(
      await callsOf(() =>
        expectStatus(stack.http.fetch(`/v2/calls/mono/blobs/uploads/?digest=${sha256(whole)}`, { method: 'POST', body: whole }), 201),
      ),
    ).toEqual({ 'DynamoDB.TransactWriteItems': 1, 'S3.PutObject': 1 });
    expect(await pulled('calls/mono', sha256(body))).toBe(sha256(body));
    expect(await pulled('calls/mono', sha256(whole))).toBe(sha256(whole));
  });
});

describe('a wrong digest is refused on every path', () => {
  const refused = async (response: Promise<Response>, name: string, digest: string) => {
    const answer = await response;
    expect(answer.status).toBe(400);
    expect(((await answer.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('DIGEST_INVALID');
    expect((await stack.http.fetch(`/v2/${name}/blobs/${digest}`, { method: 'HEAD' })).status).toBe(404);
  };

  it('after a whole-body PATCH (small and large)', async () => {
    for (const size of [MiB, 7 * MiB]) {
      const body = randomBytes(size);
      const location = (await expectStatus(patch(await stack.http.openUpload('wrong/whole'), body), 202)).headers.get('location')!;
      await refused(finish(location, WRONG), 'wrong/whole', WRONG);
      // The session ended with the refusal.
      expect((await stack.http.fetch(location)).status).toBe(404);
    }
  });

  it('after chunked PATCHes, and with the last chunk in the PUT', async () => {
    const a = randomBytes(MiB);
    const b = randomBytes(6 * MiB);
    let location = (await expectStatus(patch(await stack.http.openUpload('wrong/chunked'), a, [0, a.length - 1]), 202)).headers.get('location')!;
    location = (await expectStatus(patch(location, b, [a.length, a.length + b.length - 1]), 202)).headers.get('location')!;
    await refused(finish(location, sha256(a)), 'wrong/chunked', sha256(a));

    const c = randomBytes(2 * MiB);
    location = (await expectStatus(patch(await stack.http.openUpload('wrong/chunked'), a, [0, a.length - 1]), 202)).headers.get('location')!;
    await refused(finish(location, sha256(a), c), 'wrong/chunked', sha256(a));
  });

  it('on a monolithic PUT and on POST ?digest=', async () => {
    const body = randomBytes(MiB);
    await refused(finish(await stack.http.openUpload('wrong/mono'), WRONG, body), 'wrong/mono', WRONG);
    await refused(stack.http.fetch(`/v2/wrong/mono/blobs/uploads/?digest=${WRONG}`, { method: 'POST', body }), 'wrong/mono', WRONG);
  });
});

describe('a chunk after a whole-body PATCH', () => {
  it('is taken; the finish reads the assembled object back once to prove it, and refuses a wrong digest', async () => {
    // GetObject in the finish: the read back (the chunk read the PATCH's object to put in front of its bytes).
    for (const [first, second, gets] of [
      [MiB, MiB, 1],
      [6 * MiB, 2 * MiB, 1],
    ] as const) {
      const whole = randomBytes(first);
      const chunk = randomBytes(second);
      let location = (await expectStatus(patch(await stack.http.openUpload('after/whole'), whole), 202)).headers.get('location')!;
      location = (await expectStatus(patch(location, chunk, [whole.length, whole.length + chunk.length - 1]), 202)).headers.get('location')!;
      const calls = await callsOf(() => expectStatus(finish(location, sha256(whole, chunk)), 201));
      expect(calls['S3.GetObject']).toBe(gets);
      expect(await pulled('after/whole', sha256(whole, chunk))).toBe(sha256(whole, chunk));

      const other = randomBytes(first);
      location = (await expectStatus(patch(await stack.http.openUpload('after/whole'), other), 202)).headers.get('location')!;
      location = (await expectStatus(patch(location, chunk, [other.length, other.length + chunk.length - 1]), 202)).headers.get('location')!;
      await expect(finish(location, sha256(other)).then((answer) => answer.status)).resolves.toBe(400);
      expect((await stack.http.fetch(`/v2/after/whole/blobs/${sha256(other)}`, { method: 'HEAD' })).status).toBe(404);
    }
  });
});

describe('finishes racing on one session whose PATCH object is the blob', () => {
  it('a wrong-digest finish never deletes the object a right-digest finish recorded: the blob pulls whole, or is not there at all', async () => {
    let recorded = 0;
    for (let round = 0; round < 6; round++) {
      const body = randomBytes(MiB);
      const location = (await expectStatus(patch(await stack.http.openUpload('race/finish'), body), 202)).headers.get('location')!;
      const [right, wrong] = await Promise.all([finish(location, sha256(body)), finish(location, WRONG)]);
      expect(wrong.status).toBeGreaterThanOrEqual(400);
      if (right.status !== 201) continue;
      recorded++;
      expect(await pulled('race/finish', sha256(body))).toBe(sha256(body));
    }
    // Else the race was never run: nothing was checked.
    expect(recorded).toBeGreaterThan(0);
  });
});

describe('a chunked upload of many parts', () => {
  it('writes each chunk with session writes of one size, and its finish lists the parts (ListParts) and assembles them byte for byte', async () => {
    const chunks = Array.from({ length: 12 }, () => randomBytes(5 * MiB));
    let location = await stack.http.openUpload('calls/chunked');
    let offset = 0;
    const capacities = new Set<number>();
    for (const chunk of chunks) {
      stack.counter.take();
      location = (await expectStatus(patch(location, chunk, [offset, offset + chunk.length - 1]), 202)).headers.get('location')!;
      const { calls, consumedCapacity } = stack.counter.take();
      expect(calls['S3.UploadPart']).toBe(1);
      // From the second chunk on, each takes the lease before writing into the session's multipart upload: two PutItem.
      if (offset > 0) capacities.add(consumedCapacity);
      offset += chunk.length;
    }
    expect(capacities.size).toBe(1);
    const calls = await callsOf(() => expectStatus(finish(location, sha256(...chunks)), 201));
    expect(calls).toEqual({ 'DynamoDB.GetItem': 1, 'DynamoDB.TransactWriteItems': 1, 'S3.ListParts': 1, 'S3.CompleteMultipartUpload': 1 });
    expect(await pulled('calls/chunked', sha256(...chunks))).toBe(sha256(...chunks));
  });
});
