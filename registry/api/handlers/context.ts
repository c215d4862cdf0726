import type { RegistryRequest, RegistryResponse } from '../../model/http.js';
import type { RegistryServices } from '../../services/services.js';
import type { Caller } from '../../model/auth/caller.js';

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
}

export type Endpoint = (context: EndpointContext) => Promise<RegistryResponse>;
