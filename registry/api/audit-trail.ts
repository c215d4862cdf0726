import type { AuditEntry } from '../model/audit/audit-record.js';
import type { RegistryRequest, RegistryResponse } from '../model/http.js';
import { RegistryError } from '../model/oci/errors.js';
import { parseReference } from '../model/oci/grammar.js';
import { actorOf, type AuditLog } from '../services/audit/audit-log.js';
import type { TransactionItem } from '../storage/dynamo-errors.js';
import type { RouteParams } from './handlers/context.js';

/**
 * A registry request's audit record (docs/audit-log.md): pushes, deletes, refused tokens and,
 * when AUDIT_PULLS is on, manifest GETs. A push or delete writes its record in its own
 * transaction (`write`); everything else, refusals included, is recorded after the answer.
 */
export class AuditTrail {
  private written = false;
  private skipped = false;

  private constructor(
    private readonly audit: AuditLog,
    private readonly entry: Omit<AuditEntry, 'outcome' | 'actor'>,
    private actor: AuditEntry['actor'] = actorOf(undefined),
  ) {}

  /** The trail of a request to `operation`, or undefined when such requests are not audited. */
  static of(audit: AuditLog, operation: string, params: RouteParams, request: RegistryRequest): AuditTrail | undefined {
    const action = actionOf(operation, params, audit.settings.pulls);
    if (!action) return undefined;
    const reference = params.reference || undefined;
    const digest = params.digest || (reference && parseReference(reference)?.digest) || undefined;
    return new AuditTrail(audit, {
      action,
      repository: params.name || undefined,
      reference,
      digest,
      sourceIp: request.sourceIp,
      userAgent: request.headers['user-agent'],
    });
  }

  /** Who the authorizer found the caller to be. */
  by(subject: string | undefined): void {
    this.actor = actorOf(subject);
  }

  /** Not to be recorded: refused by the token protocol's challenge (recordRefusedAccess). */
  skip(): void {
    this.skipped = true;
  }

  /** The record as a write of the change's transaction: committed with it or not at all. */
  write(digest?: string): TransactionItem {
    this.written = true;
    return this.audit.write({ ...this.entry, digest: digest ?? this.entry.digest, actor: this.actor, outcome: 'success' });
  }

  /**
   * After the answer: a success whose transaction did not carry the record, or a refusal by
   * access or policy (DENIED, UNAUTHORIZED: an immutable tag, a caller without the right).
   * Malformed requests, unknown names and failures are the request log's: recording them would
   * let any junk request cost a write, and they say nothing about who may do what.
   */
  async finish(response: RegistryResponse): Promise<void> {
    if (this.skipped) return;
    if (response.status < 400) {
      if (this.written) return;
      await this.audit.record({
        ...this.entry,
        digest: response.headers['Docker-Content-Digest'] ?? this.entry.digest,
        actor: this.actor,
        outcome: 'success',
      });
      return;
    }
    const reason = codeOf(response);
    if (reason === 'DENIED' || reason === 'UNAUTHORIZED') await this.audit.record({ ...this.entry, actor: this.actor, outcome: 'refused', reason });
  }
}

/**
 * The authorizer refused the request. A presented token refused (invalid or expired, or its caller
 * denied the action) is recorded: on the request's own trail, else as an `access` record. The
 * challenge of a request without a token (every client's first request) and `insufficient_scope`
 * (the client comes back with a wider token) are the protocol, not refusals, and are not recorded.
 * The subject is known only for a denial: the token was verified before its caller was denied.
 */
export async function recordRefusedAccess(
  audit: AuditLog,
  trail: AuditTrail | undefined,
  error: unknown,
  request: RegistryRequest,
  repository: string | undefined,
): Promise<void> {
  const invalid = error instanceof RegistryError && error.code === 'UNAUTHORIZED' && error.bearerChallenge?.includes('error="invalid_token"');
  const denied = error instanceof RegistryError && error.code === 'DENIED';
  if (!invalid && !denied) {
    trail?.skip();
    return;
  }
  const subject = denied ? verifiedSubjectOf(request) : undefined;
  if (trail) return trail.by(subject);
  await audit.record({
    action: 'access',
    actor: actorOf(subject),
    repository,
    sourceIp: request.sourceIp,
    userAgent: request.headers['user-agent'],
    outcome: 'refused',
    reason: invalid ? 'invalid-token' : 'DENIED',
    detail: { method: request.method, path: request.path },
  });
}

function actionOf(operation: string, params: RouteParams, pulls: boolean): string | undefined {
  switch (operation) {
    case 'putManifest':
      return 'push';
    case 'deleteManifest':
      return parseReference(params.reference)?.digest ? 'delete.manifest' : 'delete.tag';
    case 'deleteBlob':
      return 'delete.blob';
    case 'getManifest':
      return pulls ? 'pull' : undefined;
    default:
      return undefined;
  }
}

/** The OCI error code of a refusal's body. */
function codeOf(response: RegistryResponse): string {
  try {
    const body = typeof response.body === 'string' ? response.body : Buffer.from(response.body ?? []).toString('utf8');
    return (JSON.parse(body) as { errors?: { code?: string }[] }).errors?.[0]?.code ?? String(response.status);
  } catch {
    return String(response.status);
  }
}

/** The `sub` of a bearer token the authorizer has verified (it denies only after verifying). */
function verifiedSubjectOf(request: RegistryRequest): string | undefined {
  const token = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
  const payload = token?.split('.')[1];
  if (!payload) return undefined;
  try {
    const sub = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub?: unknown }).sub;
    return typeof sub === 'string' ? sub : undefined;
  } catch {
    return undefined;
  }
}
