import type { RegistryRequest, RegistryResponse } from '../http/types.js';
import type { RegistryServices } from '../services.js';

/** Path parameters a route captured, already checked against the spec's grammar. */
export interface RouteParams {
  name: string;
  reference: string;
  digest: string;
  uuid: string;
}

export interface EndpointContext {
  request: RegistryRequest;
  params: RouteParams;
  services: RegistryServices;
}

export type Endpoint = (context: EndpointContext) => Promise<RegistryResponse>;
