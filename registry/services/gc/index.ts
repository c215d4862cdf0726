/** Garbage collection of unreferenced blobs, expired uploads and orphan objects: docs/garbage-collection.md. */
export { collectGarbage, DEFAULT_GRACE_SECONDS, type GcOptions, type GcTarget } from './collect-garbage.js';
export type { GcPhase, GcReport } from './report.js';
export { ORPHAN_CANDIDATES_KEY } from './sweep-objects.js';
