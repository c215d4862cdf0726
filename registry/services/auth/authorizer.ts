import { RegistryError } from '../../model/oci/errors.js';
import type { RegistryRequest } from '../../model/http.js';
import { publicGrants, type Action } from '../../model/auth/access-model.js';
import { ANYONE, tokenCaller, type Caller } from '../../model/auth/caller.js';
import { CATALOG_SCOPE, formatScope, type ResourceScope } from '../../model/auth/scopes.js';
import { robotNameOf, trustNameOf } from '../../model/auth/account-names.js';
import { ANONYMOUS_SUBJECT, type TokenVerifier } from './registry-tokens.js';

/**
 * What a route needs: nothing (`/health`), a logged-in caller (`/v2/`), the catalog, or an
 * action on a repository.
 */
export type AccessRequirement =
  | { kind: 'none' }
  | { kind: 'login' }
  | { kind: 'catalog' }
  | { kind: 'repository'; name: string; action: Exclude<Action, 'admin'> };

export interface Authorizer {
  authorize(request: RegistryRequest, requirement: AccessRequirement): Promise<Caller>;
}

export const openAccess: Authorizer = { authorize: async () => ANYONE };

/** The scope a client must ask the token endpoint for; pushing clients ask for pull too. */
function challengeScope(requirement: AccessRequirement): ResourceScope | undefined {
  if (requirement.kind === 'catalog') return CATALOG_SCOPE;
  if (requirement.kind === 'login' || requirement.kind === 'none') return undefined;
  const actions = requirement.action === 'push' ? ['pull', 'push'] : [requirement.action];
  return { type: 'repository', name: requirement.name, actions };
}

/**
 * Docker token authentication for every registry request. A missing, invalid or expired token
 * gets 401 with the challenge that sends the client to the token endpoint; a valid token whose
 * caller may not do this gets 403. Neither depends on whether the repository exists: this runs
 * before any storage is read.
 */
export class TokenAuthorizer implements Authorizer {
  constructor(
    private readonly verifier: TokenVerifier,
    private readonly realm: string,
    private readonly service: string,
    /**
     * The public patterns, read when an anonymous caller asks for `_catalog`: with any, it is
     * answered the repositories they cover instead of a challenge (registry:2 users list a
     * registry with a bare GET). Without, or with none, the catalog wants a login as before.
     */
    private readonly publicPatterns?: () => Promise<readonly string[]>,
    /** The realm challenges name on the Docker Hub mirror entry (its own `/token`, where scopes are Docker Hub names). */
    private readonly mirrorRealm?: string,
  ) {}

  async authorize(request: RegistryRequest, requirement: AccessRequirement): Promise<Caller> {
    if (requirement.kind === 'none') return ANYONE;
    const bearer = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
    if (!bearer && requirement.kind === 'catalog' && this.publicPatterns) {
      const patterns = await this.publicPatterns();
      if (patterns.length > 0) return tokenCaller([], publicGrants(patterns));
    }
    const token = bearer ? await this.verifier.verify(bearer, 'access') : undefined;
    if (!token) throw this.challenge(requirement, bearer ? 'invalid_token' : undefined, request.entry);
    const caller = tokenCaller(token.access, token.grants, token.subject);
    if (requirement.kind === 'login') return caller;
    if (requirement.kind === 'catalog') {
      if (token.access.some((scope) => scope.type === 'registry' && scope.name === 'catalog')) return caller;
      throw this.challenge(requirement, 'insufficient_scope', request.entry);
    }
    if (caller.holds(requirement.name, requirement.action)) return caller;
    // The caller may, but this token was not asked for it: send the client back for one that is.
    // Anonymous callers are told to log in rather than that they may not.
    if (caller.isAllowed(requirement.name, requirement.action) || token.subject === ANONYMOUS_SUBJECT) {
      throw this.challenge(requirement, 'insufficient_scope', request.entry);
    }
    throw new RegistryError('DENIED', deniedMessage(token.subject, requirement.name, requirement.action), {
      detail: [{ Type: 'repository', Name: requirement.name, Action: requirement.action }],
    });
  }

  private challenge(requirement: AccessRequirement, error?: string, entry?: RegistryRequest['entry']): RegistryError {
    const scope = challengeScope(requirement);
    const realm = entry === 'docker-mirror' && this.mirrorRealm ? this.mirrorRealm : this.realm;
    const parts = [`realm="${realm}"`, `service="${this.service}"`];
    if (scope) parts.push(`scope="${formatScope(scope)}"`);
    if (error) parts.push(`error="${error}"`);
    return new RegistryError('UNAUTHORIZED', 'authentication required', {
      bearerChallenge: parts.join(','),
      detail: scope ? [{ Type: scope.type, Name: scope.name, Action: scope.actions.join(',') }] : undefined,
    });
  }
}

/**
 * Who may not do what, and how an admin changes that: the caller, the repository as asked and
 * the missing action. Nothing in it depends on whether the repository exists (nothing was read).
 */
export function deniedMessage(subject: string, repository: string, action: Exclude<Action, 'admin'>): string {
  const trust = trustNameOf(subject);
  if (trust !== undefined) {
    return `trust ${trust} may not ${action} ${repository}; a trust grants what it was added with: an admin adds one with --grant '${repository}:${action}' (trust list shows them)`;
  }
  const robot = robotNameOf(subject);
  const who = robot === undefined ? `user ${subject}` : `robot ${robot}`;
  const how =
    robot === undefined
      ? `an admin grants it to a group of ${subject}'s: npm run admin -- grant <group> '${repository}' ${action}`
      : `a robot keeps the grants it was created with: an admin creates one with --grant '${repository}:${action}'`;
  return `${who} may not ${action} ${repository}; ${how}`;
}
