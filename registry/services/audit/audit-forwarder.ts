import type { AuditLogGroup } from '../../storage/audit-log-group.js';
import { isAuditItem, recordOf } from '../../storage/audit-store.js';
import type { StreamRecordHandler } from '../events/stream-record.js';

/**
 * The stream handler that copies each new audit record to the audit log group, as one JSON
 * line (docs/audit-log.md). Only inserts of AUDIT items: their TTL deletions and every other item
 * pass by. A failed write throws, so the dispatcher has the record delivered again; a record
 * delivered twice is logged twice, with the same `id` to tell.
 */
export function auditForwarder(group: AuditLogGroup): StreamRecordHandler {
  return async (record) => {
    if (record.eventName !== 'INSERT' || !isAuditItem(record.newImage)) return;
    const audit = recordOf(record.newImage!);
    const at = Date.parse(audit.time);
    await group.put(Number.isNaN(at) ? record.approximateCreationTime : at, JSON.stringify(audit));
  };
}
