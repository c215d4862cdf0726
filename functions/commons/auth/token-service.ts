import { RegistryError } from '../oci/errors.js';
import { isValidName } from '../oci/grammar.js';
import type { AccessPolicy, AccessStore } from '../storage/access-store.js';
import type { RobotStore } from '../storage/robot-store.js';
import { ACTIONS, permittedActions, type Grant } from './access-model.js';
import type { CognitoIdentities, UserIdentity } from './cognito-identities.js';
import { ANONYMOUS_SUBJECT, type TokenSigner, type TokenVerifier } from './registry-tokens.js';
import { verifyRobotSecret } from './robot-secrets.js';
import { formatScope, type ResourceScope } from './scopes.js';

export const ROBOT_PREFIX = 'robot$';

export interface TokenServiceOptions {
  service: string;
  adminGroup: string;
  accessTokenSeconds: number;
  refreshTokenSeconds: number;
}

export interface TokenRequest {
  scopes: ResourceScope[];
  /** Ask for a refresh token too (docker login's `offline_token=true`). */
  offline: boolean;
  credentials?: { username: string; password: string };
  refreshToken?: string;
}

export interface IssuedToken {
  token: string;
  expiresIn: number;
  issuedAt: string;
  scope: string;
  refreshToken?: string;
}

interface Identity {
  subject: string;
  grants: Grant[];
  /** Robots' refresh tokens end with the robot. */
  validUntil?: number;
}

/**
 * Issues registry tokens: finds who is asking (a Cognito user, a robot, or nobody), works out
 * what that identity may do, and grants the intersection with what was asked for.
 */
export class TokenService {
  constructor(
    private readonly signer: TokenSigner,
    private readonly verifier: TokenVerifier,
    private readonly users: CognitoIdentities,
    private readonly robots: RobotStore,
    private readonly access: AccessStore,
    private readonly options: TokenServiceOptions,
  ) {}

  async issue(request: TokenRequest): Promise<IssuedToken> {
    const policy = await this.access.read();
    const identity = await this.identify(request, policy);
    if (!identity) throw new RegistryError('UNAUTHORIZED', 'invalid username, password or token');
    const grants = [...identity.grants, ...policy.publicPatterns.map((pattern): Grant => ({ pattern, actions: ['pull'] }))];
    const access = request.scopes.map((scope) => grantedScope(scope, grants)).filter((scope) => scope !== undefined);
    const { accessTokenSeconds, service } = this.options;
    const { token, issuedAt } = this.signer.sign('access', service, accessTokenSeconds, { sub: identity.subject, access, grants });
    const issued: IssuedToken = {
      token,
      expiresIn: accessTokenSeconds,
      issuedAt: issuedAt.toISOString(),
      scope: access.map(formatScope).join(' '),
    };
    if (request.offline && request.credentials && identity.subject !== ANONYMOUS_SUBJECT) {
      issued.refreshToken = this.refreshTokenFor(identity);
    }
    return issued;
  }

  private async identify(request: TokenRequest, policy: AccessPolicy): Promise<Identity | undefined> {
    if (request.refreshToken !== undefined) return this.fromRefreshToken(request.refreshToken, policy);
    if (!request.credentials) return { subject: ANONYMOUS_SUBJECT, grants: [] };
    const { username, password } = request.credentials;
    if (username.startsWith(ROBOT_PREFIX)) return this.robot(username.slice(ROBOT_PREFIX.length), password);
    const user = await this.users.authenticate(username, password);
    return user && this.userIdentity(user, policy);
  }

  /** A refresh token is honoured only while its user or robot still may log in. */
  private async fromRefreshToken(refreshToken: string, policy: AccessPolicy): Promise<Identity | undefined> {
    const verified = await this.verifier.verify(refreshToken, 'refresh');
    if (!verified) return undefined;
    if (verified.subject.startsWith(ROBOT_PREFIX)) return this.robot(verified.subject.slice(ROBOT_PREFIX.length));
    const user = await this.users.current(verified.subject);
    return user && this.userIdentity(user, policy);
  }

  /** Checks the secret when given one; a refresh re-checks only that the robot is still valid. */
  private async robot(name: string, secret?: string): Promise<Identity | undefined> {
    const robot = await this.robots.get(name);
    if (!robot || robot.revoked || robot.validUntil * 1000 <= Date.now()) return undefined;
    if (secret !== undefined && !(await verifyRobotSecret(secret, robot.secretHash))) return undefined;
    return { subject: `${ROBOT_PREFIX}${name}`, grants: robot.grants, validUntil: robot.validUntil };
  }

  private userIdentity(user: UserIdentity, policy: AccessPolicy): Identity {
    const grants: Grant[] = policy.groupGrants
      .filter((grant) => user.groups.includes(grant.group))
      .map(({ pattern, actions }) => ({ pattern, actions }));
    if (user.groups.includes(this.options.adminGroup)) grants.push({ pattern: '*', actions: ['admin'] });
    return { subject: user.username, grants };
  }

  private refreshTokenFor(identity: Identity): string {
    const now = Math.floor(Date.now() / 1000);
    const lifetime = Math.min(this.options.refreshTokenSeconds, (identity.validUntil ?? Number.POSITIVE_INFINITY) - now);
    return this.signer.sign('refresh', this.options.service, lifetime, { sub: identity.subject }).token;
  }
}

/** The part of a requested scope the grants allow; undefined when nothing of it is. */
function grantedScope(scope: ResourceScope, grants: readonly Grant[]): ResourceScope | undefined {
  if (scope.type === 'registry' && scope.name === 'catalog') return { ...scope, actions: ['*'] };
  if (scope.type !== 'repository' || !isValidName(scope.name)) return undefined;
  const permitted = permittedActions(grants, scope.name);
  const asked = scope.actions.includes('*') ? [...ACTIONS] : scope.actions;
  const actions = asked.filter((action) => action !== 'admin' && permitted.has(action as never));
  return actions.length > 0 ? { type: 'repository', name: scope.name, actions } : undefined;
}
