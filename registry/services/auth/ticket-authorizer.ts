import { RegistryError } from '../../model/oci/errors.js';
import type { RegistryRequest } from '../../model/http.js';
import { TICKET_PARAMETER, type SessionAction, type UploadTickets } from '../uploads/upload-tickets.js';
import type { AccessRequirement, Authorizer } from './authorizer.js';
import type { Caller } from '../../model/auth/caller.js';

const UPLOAD_SESSION_PATH = /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/;
const ACTION_OF_METHOD: Record<string, SessionAction> = { PATCH: 'patch', PUT: 'put', GET: 'get', DELETE: 'delete' };

/**
 * The upload gateway's authorizer (docs/upload-gateway.md). It allows only the requests of an
 * upload session the registry opened: PATCH, PUT, GET and DELETE on
 * `/v2/<name>/blobs/uploads/<uuid>`, each with a valid ticket for exactly that name and uuid.
 * Everything else (manifests, pulls, POST, the token endpoint) belongs to the registry itself,
 * and the refusal says where that is.
 *
 * - no ticket, a malformed, forged or expired one: 401 UNAUTHORIZED (no challenge: there is no
 *   token that would help; a new Location comes from the registry).
 * - an authentic ticket for another repository, session or action: 403 DENIED.
 */
export class TicketAuthorizer implements Authorizer {
  constructor(
    private readonly tickets: UploadTickets,
    /** The registry's public base URL, named in every refusal. */
    private readonly registryUrl: string,
  ) {}

  async authorize(request: RegistryRequest, requirement: AccessRequirement): Promise<Caller> {
    const session = UPLOAD_SESSION_PATH.exec(request.path);
    const action = ACTION_OF_METHOD[request.method];
    if (!session || !action || requirement.kind !== 'repository' || requirement.name !== session[1]) {
      throw new RegistryError(
        'DENIED',
        `this is the upload gateway: it only receives the bodies of uploads opened at ${this.registryUrl}; send this request there`,
        {
          detail: { registry: this.registryUrl },
        },
      );
    }
    const name = session[1]!;
    const uuid = session[2]!;
    const resume = `GET ${this.registryUrl}/v2/${name}/blobs/uploads/${uuid} answers a fresh Location`;
    const tickets = request.query.getAll(TICKET_PARAMETER);
    if (tickets.length !== 1) {
      throw new RegistryError('UNAUTHORIZED', `an upload ticket is required: follow the Location the registry answered (${resume})`, {
        detail: { registry: this.registryUrl },
      });
    }
    const check = this.tickets.verify(tickets[0]!);
    if (!check.valid) {
      const problem = check.reason === 'expired' ? 'the upload ticket has expired' : 'the upload ticket is not valid';
      throw new RegistryError('UNAUTHORIZED', `${problem} (${resume})`, { detail: { registry: this.registryUrl, reason: check.reason } });
    }
    const { claims } = check;
    if (claims.repository !== name || claims.sessionId !== uuid || !claims.actions.includes(action)) {
      throw new RegistryError('DENIED', 'the upload ticket is for another upload', {
        detail: [{ Type: 'upload', Name: name, Action: action }],
      });
    }
    return sessionCaller(name);
  }
}

/** A caller that may push to one repository and do nothing else. */
function sessionCaller(repository: string): Caller {
  const may = (name: string, action: string) => name === repository && action === 'push';
  return { holds: may, isAllowed: may };
}
