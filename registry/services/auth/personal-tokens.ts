import { randomBytes } from 'node:crypto';
import type { Grant } from '../../model/auth/access-model.js';
import type { PersonalToken, PersonalTokenStore } from '../../storage/personal-token-store.js';
import type { CognitoIdentities, UserIdentity } from './cognito-identities.js';
import { generateRobotSecret as generateSecret, hashRobotSecret as hashSecret, verifyRobotSecret as verifySecret } from './robot-secrets.js';

/**
 * Personal access tokens (docs/logins.md): `rpat_<id>_<secret>`, given as the password with the
 * owner's name. The prefix lets secret scanners (and the token endpoint) recognise one; the id
 * names the item, so a login reads one item; the secret is 32 random bytes (256 bits), stored
 * only as its scrypt hash, as robot secrets are.
 */
export const PERSONAL_TOKEN_PREFIX = 'rpat_';
const TOKEN_FORMAT = /^rpat_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const ID_FORMAT = /^[0-9a-f]{16}$/;

/** Labels: short, printable, safe in a table and a URL once encoded. */
const LABEL = /^[A-Za-z0-9][A-Za-z0-9 ._@+-]{0,63}$/;
export const MAX_TOKEN_DAYS = 3650;
/** Live tokens per user, so that a user's partition and its listing stay small. */
export const MAX_LIVE_TOKENS = 50;
const DAY_SECONDS = 24 * 3600;
/**
 * How stale "last used" may be. Every `docker push` asks for tokens (one per repository, and
 * again as they expire): writing the item at each login would cost a write per token request and
 * make every login of a busy CI token contend on one item, for a date nobody needs to the minute.
 */
export const LAST_USED_RESOLUTION_MS = 60 * 60 * 1000;

/** Whether a password is a personal access token (and not a password or robot secret). */
export function isPersonalTokenSecret(password: string): boolean {
  return TOKEN_FORMAT.test(password);
}

export function isPersonalTokenId(value: string): boolean {
  return ID_FORMAT.test(value);
}

export interface NewPersonalToken {
  name: string;
  /** Days until it stops logging in (1 to MAX_TOKEN_DAYS); absent: never. */
  expiresDays?: number;
  /** At most what these allow (within the owner's rights); absent: all the owner's rights. */
  grants?: Grant[];
}

/** What a login with a personal token found: the owner as the pool has them now, and the token's limits. */
export interface PersonalTokenLogin {
  user: UserIdentity;
  tokenId: string;
  grants?: Grant[];
  validUntil?: number;
}

export type CreateResult = { created: PersonalToken; secret: string } | { refused: 'invalid' | 'exists' | 'tooMany'; problem: string };

/** A token as listed to its owner or an admin: dates as ISO strings, never the secret or hash. */
export interface PersonalTokenSummary {
  id: string;
  name: string;
  status: 'active' | 'revoked' | 'expired';
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  grants: Grant[] | null;
}

/** Why a new token cannot be made as asked; undefined when it can. */
export function newTokenProblem(request: NewPersonalToken): string | undefined {
  if (typeof request.name !== 'string' || !LABEL.test(request.name)) {
    return 'a token name is 1 to 64 letters, digits, spaces and . _ @ + -, starting with a letter or digit';
  }
  const days = request.expiresDays;
  if (days !== undefined && (!Number.isInteger(days) || days < 1 || days > MAX_TOKEN_DAYS)) {
    return `expiry is a whole number of days from 1 to ${MAX_TOKEN_DAYS}`;
  }
  if (request.grants !== undefined && request.grants.length === 0) return 'grants, when given, list at least one <pattern>:<actions>';
  return undefined;
}

export function describePersonalToken(token: PersonalToken, now = Date.now()): PersonalTokenSummary {
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  return {
    id: token.id,
    name: token.name,
    status: token.revoked ? 'revoked' : isExpired(token, now) ? 'expired' : 'active',
    createdAt: new Date(token.createdAt).toISOString(),
    expiresAt: iso(token.validUntil === undefined ? undefined : token.validUntil * 1000),
    lastUsedAt: iso(token.lastUsedAt),
    grants: token.grants ?? null,
  };
}

function isExpired(token: PersonalToken, now: number): boolean {
  return token.validUntil !== undefined && token.validUntil * 1000 <= now;
}

function isLive(token: PersonalToken, now: number): boolean {
  return !token.revoked && !isExpired(token, now);
}

/** Creating, listing, revoking and logging in with personal access tokens; the admin CLI and the token endpoint alike. */
export class PersonalTokens {
  constructor(
    private readonly store: PersonalTokenStore,
    /** For logins; the admin CLI, which only creates, lists and revokes, has none. */
    private readonly users?: Pick<CognitoIdentities, 'current'>,
  ) {}

  /** A new token for `username` (the name as the pool has it); the secret is answered once and never kept. */
  async create(username: string, request: NewPersonalToken, now = Date.now()): Promise<CreateResult> {
    const problem = newTokenProblem(request);
    if (problem) return { refused: 'invalid', problem };
    const live = (await this.store.list(username)).filter((token) => isLive(token, now));
    if (live.some((token) => token.name === request.name)) {
      return { refused: 'exists', problem: `${username} has a token named "${request.name}" already: revoke it or pick another name` };
    }
    if (live.length >= MAX_LIVE_TOKENS) return { refused: 'tooMany', problem: `${username} has ${live.length} tokens: revoke some first` };
    const id = randomBytes(8).toString('hex');
    const secret = `${PERSONAL_TOKEN_PREFIX}${id}_${generateSecret()}`;
    const token: PersonalToken = {
      id,
      username,
      name: request.name,
      createdAt: now,
      ...(request.expiresDays === undefined ? {} : { validUntil: Math.floor(now / 1000) + request.expiresDays * DAY_SECONDS }),
      ...(request.grants === undefined ? {} : { grants: request.grants }),
      revoked: false,
    };
    if (!(await this.store.create({ ...token, secretHash: await hashSecret(secret) }))) throw new Error(`token id ${id} exists already`);
    return { created: token, secret };
  }

  /** Oldest first. */
  async list(username: string): Promise<PersonalToken[]> {
    return (await this.store.list(username)).sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Revokes the user's token of that id, or their live token of that name; answers what was revoked. */
  async revoke(username: string, idOrName: string, now = Date.now()): Promise<PersonalToken | undefined> {
    const tokens = await this.store.list(username);
    const token =
      tokens.find((candidate) => candidate.id === idOrName) ?? tokens.find((candidate) => candidate.name === idOrName && isLive(candidate, now));
    if (!token || !(await this.store.revoke(username, token.id, now))) return undefined;
    return token;
  }

  revokeAll(username: string): Promise<number> {
    return this.store.revokeAll(username);
  }

  /**
   * A login with a token as the password and its owner's name (any other name finds no item):
   * the secret is checked first, against a dummy hash when there is no such token, so that a
   * refusal takes as long whatever the reason; then revocation and expiry on the item as read now
   * (strongly consistent), then the owner as the pool has them now (deleted or disabled: refused).
   */
  async logIn(username: string, secret: string, now = Date.now()): Promise<PersonalTokenLogin | undefined> {
    const id = TOKEN_FORMAT.exec(secret)?.[1];
    if (id === undefined || !this.users) return undefined;
    const token = await this.store.get(username, id);
    if (!(await verifySecret(secret, token?.secretHash))) return undefined;
    if (!token || !isLive(token, now)) return undefined;
    const user = await this.users.current(token.username);
    if (!user) return undefined;
    if (token.lastUsedAt === undefined || token.lastUsedAt < now - LAST_USED_RESOLUTION_MS) {
      // Best effort: a login is not refused because its date could not be noted.
      await this.store.recordUse(token.username, id, now, now - LAST_USED_RESOLUTION_MS).catch(() => undefined);
    }
    return { user, tokenId: id, grants: token.grants, validUntil: token.validUntil };
  }
}
