import type { BodyStream } from '../model/http.js';
import { RegistryError, type ErrorCode } from '../model/oci/errors.js';

/**
 * Reads a small body (a manifest, a form) into memory, refusing it with 413 as soon as it
 * passes `limit`, so that an oversized upload is never buffered whole.
 */
export async function readBoundedBody(
  body: BodyStream | undefined,
  declaredLength: string | undefined,
  limit: number,
  code: ErrorCode = 'SIZE_INVALID',
): Promise<Uint8Array> {
  const tooLarge = () => new RegistryError(code, `request body exceeds the ${limit} byte limit`, { refusal: 'tooLarge', detail: { limit } });
  if (declaredLength !== undefined && Number(declaredLength) > limit) throw tooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body ?? []) {
    size += chunk.byteLength;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}
