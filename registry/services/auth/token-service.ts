import { RegistryError } from '../../model/oci/errors.js';
import { isValidName } from '../../model/oci/grammar.js';
import type { AccessPolicy, AccessStore } from '../../storage/access-store.js';
import type { LoginStateStore } from '../../storage/login-state-store.js';
import type { RobotStore } from '../../storage/robot-store.js';
import { ACTIONS, permittedActions, publicGrants, type Grant } from '../../model/auth/access-model.js';
import { ROBOT_PREFIX, isValidPoolUsername, isValidRobotName, isValidTrustName, robotNameOf, trustNameOf } from '../../model/auth/account-names.js';
import type { CognitoIdentities } from './cognito-identities.js';
import { LoginThrottle, type LoginThrottlePolicy } from './login-throttle.js';
import { ANONYMOUS_SUBJECT, type TokenSigner, type TokenVerifier } from './registry-tokens.js';
import { verifyRobotSecret } from './robot-secrets.js';
import type { WorkloadLogins } from './workload-identity.js';
import { formatScope, type ResourceScope } from '../../model/auth/scopes.js';
import { intersectGrants } from '../../model/auth/grant-sets.js';
import { isPersonalTokenSecret, type PersonalTokens } from './personal-tokens.js';
import { actorOf, type AuditLog } from '../audit/audit-log.js';

export { ROBOT_PREFIX };

/** Where a request comes from when the transport did not say (only in tests and tools). */
const UNKNOWN_SOURCE = 'unknown';

export interface TokenServiceOptions {
  service: string;
  adminGroup: string;
  accessTokenSeconds: number;
  refreshTokenSeconds: number;
  /** Defaults to LOGIN_THROTTLE (docs/logins.md). */
  loginThrottle?: LoginThrottlePolicy;
  /** Personal access tokens as passwords (docs/logins.md); without, a password in their format is refused. */
  personalTokens?: PersonalTokens;
  /** Where logins are recorded, succeeded or refused (docs/audit-log.md). */
  audit?: AuditLog;
  /**
   * The canonical name of a requested repository (pull-through names, docs/pull-through.md), so
   * that tokens hold canonical names only: `hub/nginx` is granted as `hub/library/nginx`.
   */
  canonicalName?: (name: string, entry: TokenRequest['entry']) => Promise<string>;
}

export interface TokenRequest {
  scopes: ResourceScope[];
  /** Ask for a refresh token too (docker login's `offline_token=true`). */
  offline: boolean;
  credentials?: { username: string; password: string };
  refreshToken?: string;
  /** The caller's address as the transport saw it (API Gateway's sourceIp), for login throttling. */
  source?: string;
  /** For the audit log only. */
  userAgent?: string;
  /** The entry the request came in by (RegistryRequest.entry): the Docker Hub mirror's names are Docker Hub's. */
  entry?: 'docker-mirror';
}

/** Where a login comes from, for throttling and the audit record. */
type LoginContext = Pick<TokenRequest, 'source' | 'userAgent'>;

export interface IssuedToken {
  token: string;
  expiresIn: number;
  issuedAt: string;
  scope: string;
  refreshToken?: string;
}

/** Who a token request turned out to be. */
interface Account {
  subject: string;
  /** A user's groups (their grants follow from the access policy); absent for robots and anonymous callers. */
  groups?: string[];
  /** Grants of its own: a robot's. */
  grants: Grant[];
  /** Epoch seconds: its tokens end by then (a robot's expiry, a workload's ID token). */
  validUntil?: number;
  /**
   * Workload and personal-token logins never get a refresh token: the job logs in again with a new
   * ID token, and a stored login keeps the personal token itself, which every token request re-checks.
   */
  refreshable?: false;
  /** The account's session generation: its refresh tokens name it, and a newer one voids them. */
  generation: number;
  /** A personal access token's login: its id, and the grants it narrows its user's rights to. */
  personalToken?: { id: string; grants?: Grant[] };
}

/** Who a login's credentials are, for the requests that act as them (the personal-token endpoint). */
export interface LoggedIn {
  subject: string;
  robot: boolean;
  /** The id of the personal access token it logged in with, if it did. */
  personalTokenId?: string;
}

/**
 * Issues registry tokens: finds who is asking (a Cognito user, a robot, or nobody), works out
 * what that identity may do, and grants the intersection with what was asked for.
 */
export class TokenService {
  private readonly throttle: LoginThrottle;

  constructor(
    private readonly signer: TokenSigner,
    private readonly verifier: TokenVerifier,
    private readonly users: CognitoIdentities,
    private readonly robots: RobotStore,
    private readonly access: AccessStore,
    private readonly logins: LoginStateStore,
    private readonly options: TokenServiceOptions,
    /** OIDC workload logins (`trust$<name>`); without them such names are wrong credentials. */
    private readonly workloads?: WorkloadLogins,
  ) {
    this.throttle = new LoginThrottle(logins, options.loginThrottle);
  }

  async issue(request: TokenRequest): Promise<IssuedToken> {
    const [policy, identity] = await Promise.all([this.access.readCached(), this.identify(request)]);
    if (!identity) throw new RegistryError('UNAUTHORIZED', 'invalid username, password or token');
    const grants = [...this.grantsOf(identity, policy), ...publicGrants(policy.publicPatterns)];
    const scopes = await this.canonicalScopes(request);
    const access = scopes.map((scope) => grantedScope(scope, grants)).filter((scope) => scope !== undefined);
    const { service } = this.options;
    const accessTokenSeconds = Math.min(this.options.accessTokenSeconds, secondsUntil(identity.validUntil));
    if (accessTokenSeconds <= 0) throw new RegistryError('UNAUTHORIZED', 'invalid username, password or token');
    const { token, issuedAt } = this.signer.sign('access', service, accessTokenSeconds, { sub: identity.subject, access, grants });
    const issued: IssuedToken = {
      token,
      expiresIn: accessTokenSeconds,
      issuedAt: issuedAt.toISOString(),
      scope: access.map(formatScope).join(' '),
    };
    if (request.offline && request.credentials && identity.subject !== ANONYMOUS_SUBJECT && identity.refreshable !== false) {
      issued.refreshToken = this.refreshTokenFor(identity);
    }
    return issued;
  }

  get personalTokens(): PersonalTokens | undefined {
    return this.options.personalTokens;
  }

  /** Where the requests acting as a login (the personal-token endpoint) record what they changed. */
  get audit(): AuditLog | undefined {
    return this.options.audit;
  }

  /** Checks Basic credentials as a login does (throttled alike); undefined when they are wrong. */
  async logInAs(credentials: { username: string; password: string }, source = UNKNOWN_SOURCE): Promise<LoggedIn | undefined> {
    const account = await this.logIn(credentials, { source });
    return account && { subject: account.subject, robot: robotNameOf(account.subject) !== undefined, personalTokenId: account.personalToken?.id };
  }

  private async canonicalScopes(request: TokenRequest): Promise<ResourceScope[]> {
    const canonical = this.options.canonicalName;
    if (!canonical) return request.scopes;
    return Promise.all(
      request.scopes.map(async (scope) =>
        scope.type === 'repository' && isValidName(scope.name) ? { ...scope, name: await canonical(scope.name, request.entry) } : scope,
      ),
    );
  }

  private async identify(request: TokenRequest): Promise<Account | undefined> {
    if (request.refreshToken !== undefined) {
      const account = await this.fromRefreshToken(request.refreshToken);
      await this.recordLogin(request, 'refresh-token', account?.subject, account ? undefined : 'invalid-refresh-token');
      return account;
    }
    if (!request.credentials) return { subject: ANONYMOUS_SUBJECT, grants: [], generation: 0 };
    return this.logIn(request.credentials, request);
  }

  /** One audit record per login, with the failure reason as a code; never the credential. */
  private async recordLogin(request: LoginContext, method: string, subject: string | undefined, reason?: string): Promise<void> {
    await this.options.audit?.record({
      action: 'login',
      actor: subject === undefined ? { subject: 'unknown', kind: 'anonymous' } : actorOf(subject),
      sourceIp: request.source,
      userAgent: request.userAgent,
      outcome: reason ? 'refused' : 'success',
      reason,
      detail: { method },
    });
  }

  /**
   * A login with a password, a robot secret, a personal token or (`trust$`) an OIDC ID token. The name is checked before anything is looked up (a
   * name no account can have is a wrong credential, and would make an invalid key), then the
   * throttle (docs/logins.md), then the credentials.
   */
  private async logIn(credentials: { username: string; password: string }, context: LoginContext): Promise<Account | undefined> {
    const { username, password } = credentials;
    const source = context.source ?? UNKNOWN_SOURCE;
    // A job's ID token is not a guessable password: no throttle, and the trust's own checks.
    const trustName = trustNameOf(username);
    if (trustName !== undefined) {
      const login = this.workloads && isValidTrustName(trustName) ? await this.workloads.logIn(trustName, password) : { refused: 'unknown-trust' };
      await this.recordLogin(context, 'oidc-id-token', username, 'refused' in login ? login.refused : undefined);
      return 'account' in login ? { ...login.account, generation: 0, refreshable: false } : undefined;
    }
    const robotName = robotNameOf(username);
    const method = robotName !== undefined ? 'robot-secret' : isPersonalTokenSecret(password) ? 'personal-token' : 'password';
    if (robotName === undefined ? !isValidPoolUsername(username) : !isValidRobotName(robotName)) {
      await this.recordLogin(context, method, undefined, 'invalid-name');
      return undefined;
    }
    // Read before the password is checked: a sign-out after this read voids the token issued.
    const state = await this.throttle.admit(username, source).catch(async (error: unknown) => {
      await this.recordLogin(context, method, username, 'throttled');
      throw error;
    });
    const account =
      robotName !== undefined
        ? await this.robot(robotName, password)
        : method === 'personal-token'
          ? await this.personalToken(username, password)
          : await this.user(username, password, state.generation);
    if (account) await this.throttle.succeeded(username, source, state);
    else await this.throttle.failed(username, source);
    await this.recordLogin(context, method, username, account ? undefined : 'bad-credentials');
    return account;
  }

  /**
   * A refresh token is honoured only while its user or robot still may log in, and only in the
   * session generation it was issued in: a password change, a disabled user, a removal from a
   * group and "sign out everywhere" each start a new one.
   */
  private async fromRefreshToken(refreshToken: string): Promise<Account | undefined> {
    const verified = await this.verifier.verify(refreshToken, 'refresh');
    if (!verified) return undefined;
    const robotName = robotNameOf(verified.subject);
    const account = robotName === undefined ? await this.currentUser(verified.subject) : await this.robot(robotName);
    return account?.generation === verified.generation ? account : undefined;
  }

  private async user(username: string, password: string, generation: number): Promise<Account | undefined> {
    const user = await this.users.authenticate(username, password);
    return user && { subject: user.username, groups: user.groups, grants: [], generation };
  }

  private async personalToken(username: string, secret: string): Promise<Account | undefined> {
    const login = await this.options.personalTokens?.logIn(username, secret);
    if (!login) return undefined;
    const { user, tokenId, grants } = login;
    return { subject: user.username, groups: user.groups, grants: [], generation: 0, personalToken: { id: tokenId, grants }, refreshable: false };
  }

  private async currentUser(username: string): Promise<Account | undefined> {
    const [user, generation] = await Promise.all([this.users.current(username), this.logins.generation(username)]);
    return user && { subject: user.username, groups: user.groups, grants: [], generation };
  }

  /**
   * Checks the secret when given one; a refresh re-checks only that the robot is still valid.
   * The secret is checked first, against a dummy hash when there is no such robot, so that a
   * refusal takes as long whether the robot is unknown, revoked, expired or just given a wrong
   * secret.
   */
  private async robot(name: string, secret?: string): Promise<Account | undefined> {
    const robot = await this.robots.get(name);
    if (secret !== undefined && !(await verifyRobotSecret(secret, robot?.secretHash))) return undefined;
    if (!robot || robot.revoked || robot.validUntil * 1000 <= Date.now()) return undefined;
    // Revoking a robot ends its sessions: the stored robot is re-read on every use, as a
    // user's generation is, so a robot needs no generation of its own.
    return { subject: `${ROBOT_PREFIX}${name}`, grants: robot.grants, validUntil: robot.validUntil, generation: 0 };
  }

  /** A robot's own grants; a user's come from its groups under the access policy. */
  private grantsOf(account: Account, policy: AccessPolicy): Grant[] {
    if (!account.groups) return account.grants;
    const groups = account.groups;
    const grants: Grant[] = policy.groupGrants.filter((grant) => groups.includes(grant.group)).map(({ pattern, actions }) => ({ pattern, actions }));
    if (groups.includes(this.options.adminGroup)) grants.push({ pattern: '*', actions: ['admin'] });
    const limit = account.personalToken?.grants;
    return limit ? intersectGrants(grants, limit) : grants;
  }

  private refreshTokenFor(account: Account): string {
    const now = Math.floor(Date.now() / 1000);
    const lifetime = Math.min(this.options.refreshTokenSeconds, secondsUntil(account.validUntil, now));
    return this.signer.sign('refresh', this.options.service, lifetime, { sub: account.subject, gen: account.generation }).token;
  }
}

/** Whole seconds from now until an epoch-seconds deadline; unbounded without one. */
function secondsUntil(deadline: number | undefined, now = Math.floor(Date.now() / 1000)): number {
  return deadline === undefined ? Number.POSITIVE_INFINITY : deadline - now;
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
