/**
 * The `Range` an upload session answers with (end-5 and end-11): `0-<last byte received>`,
 * and `0-0` before any byte, as registry:2 and the clients expect.
 */
export function uploadRange(received: number): string {
  return `0-${Math.max(received - 1, 0)}`;
}
