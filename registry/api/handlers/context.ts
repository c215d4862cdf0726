import type { RegistryRequest, RegistryResponse } from '../../model/http.js';
import type { RegistryServices } from '../../services/services.js';
import type { Caller } from '../../model/auth/caller.js';
import type { AuditTrail } from '../audit-trail.js';
import type { CacheTarget } from '../../model/pull-through/upstream.js';

/** Path parameters a route captured, already checked against the spec's grammar. */
export interface RouteParams {
  name: string;
  reference: string;
  digest: string;
  uuid: string;
}

export interface EndpointContext {
  request: RegistryRequest;
  /** Already authorized for the route's requirement; consulted for anything beyond it. */
  caller: Caller;
  params: RouteParams;
  services: RegistryServices;
  /** Set on audited requests (docs/audit-log.md): a push or delete writes `audit.write()` in its transaction. */
  audit?: AuditTrail;
  /** Set when `params.name` is a pull-through cache repository (api/registry.ts resolved it): where it comes from upstream. */
  cache?: CacheTarget;
}

export type Endpoint = (context: EndpointContext) => Promise<RegistryResponse>;
