/**
 * An audit record (docs/audit-log.md): who did what, to which repository, when, from where, and
 * whether it was allowed. Nothing secret goes in one: no password, token, secret, Authorization
 * header or presigned URL; callers give only the fields below, and `detail` holds names and
 * values meant to be read by an admin (a grant's actions, a robot's expiry).
 */
export type ActorKind = 'user' | 'robot' | 'admin' | 'anonymous';

export type AuditOutcome = 'success' | 'refused';

export interface AuditActor {
  /** A user's login name, `robot$<name>`, `anonymous`, or for admin commands the operator (docs/audit-log.md). */
  subject: string;
  kind: ActorKind;
}

/** What a caller records: `audit.record({ action, actor, outcome, ... })`. */
export interface AuditEntry {
  /**
   * Dotted, most general word first, so that `audit list --action delete` finds every delete:
   * `login`, `access`, `push`, `pull`, `delete.manifest`, `delete.tag`, `delete.blob`,
   * `user.create`, `grant`, `robot.revoke`, `retention.set`, `upstream.add`, `webhook.add`, ...
   */
  action: string;
  actor: AuditActor;
  repository?: string;
  /** The tag or digest a request named. */
  reference?: string;
  digest?: string;
  /** The caller's address as the transport saw it (never a client-sent header). */
  sourceIp?: string;
  userAgent?: string;
  outcome: AuditOutcome;
  /** Why it was refused, as a code: an OCI error code (`DENIED`) or a login's (`bad-credentials`, `throttled`). */
  reason?: string;
  detail?: Record<string, string>;
}

export interface AuditRecord extends AuditEntry {
  id: string;
  /** ISO 8601, UTC, milliseconds. */
  time: string;
}

/** Longest user agent or detail value kept: a record stays small whatever a client sends. */
const MAX_TEXT = 256;

/** The entry as it may be stored: known fields only, text bounded. */
export function boundedEntry(entry: AuditEntry): AuditEntry {
  const bounded: AuditEntry = {
    action: entry.action,
    actor: { subject: bound(entry.actor.subject), kind: entry.actor.kind },
    outcome: entry.outcome,
  };
  if (entry.repository !== undefined) bounded.repository = entry.repository;
  if (entry.reference !== undefined) bounded.reference = bound(entry.reference);
  if (entry.digest !== undefined) bounded.digest = bound(entry.digest);
  if (entry.sourceIp !== undefined) bounded.sourceIp = bound(entry.sourceIp);
  if (entry.userAgent !== undefined) bounded.userAgent = bound(entry.userAgent);
  if (entry.reason !== undefined) bounded.reason = bound(entry.reason);
  if (entry.detail) bounded.detail = Object.fromEntries(Object.entries(entry.detail).map(([name, value]) => [name, bound(String(value))]));
  return bounded;
}

function bound(text: string): string {
  return text.length <= MAX_TEXT ? text : `${text.slice(0, MAX_TEXT - 1)}…`;
}

/** Whether a record matches `audit list`'s filters; `action` matches itself and the actions under it. */
export function matchesAction(action: string, wanted: string): boolean {
  return action === wanted || action.startsWith(`${wanted}.`);
}
