import type { RegistryRequest, RegistryResponse } from '../model/http.js';
import type { Grant } from '../model/auth/access-model.js';
import { parseGrantText } from '../model/auth/grant-sets.js';
import { RegistryError } from '../model/oci/errors.js';
import { describePersonalToken, type NewPersonalToken, type PersonalTokens } from '../services/auth/personal-tokens.js';
import type { LoggedIn, TokenService } from '../services/auth/token-service.js';
import { readBoundedBody } from './request-body.js';
import type { AuditOutcome } from '../model/audit/audit-record.js';
import { actorOf } from '../services/audit/audit-log.js';
import { emptyResponse, jsonResponse } from './responses.js';

/** Self-service personal access tokens, beside the token endpoint (docs/logins.md). */
export const PERSONAL_TOKENS_PATH = '/token/personal-tokens';
const MAX_BODY_BYTES = 16 * 1024;
const NO_STORE = { 'Cache-Control': 'no-store' };

export function isPersonalTokensPath(path: string): boolean {
  return path === PERSONAL_TOKENS_PATH || path.startsWith(`${PERSONAL_TOKENS_PATH}/`);
}

/**
 * `POST /token/personal-tokens` (JSON `{name, expiresDays?, grants?}`) creates one and answers its
 * secret once, `GET` lists the caller's, `DELETE /token/personal-tokens/<id or name>` revokes one.
 * Each request logs in with Basic credentials, the user's password or one of their personal
 * tokens, throttled as any login; no admin rights are needed, and only the caller's own tokens
 * are ever seen or touched. Creating needs the password: a token may list and revoke, but a
 * stolen one could otherwise mint tokens that outlive its own revocation.
 */
export async function answerPersonalTokens(tokens: TokenService, request: RegistryRequest, credentials?: { username: string; password: string }) {
  const service = tokens.personalTokens;
  if (!service) throw new RegistryError('UNSUPPORTED', 'this registry has no personal access tokens', { refusal: 'noEndpoint' });
  const rest = request.path.slice(PERSONAL_TOKENS_PATH.length);
  const target = rest === '' || rest === '/' ? undefined : decodeURIComponent(rest.slice(1));
  const allowed = target === undefined ? ['GET', 'POST'] : ['DELETE'];
  if (!allowed.includes(request.method)) {
    throw new RegistryError('UNSUPPORTED', `${request.method} is not supported here`, { allowedMethods: allowed });
  }
  const caller = credentials && (await tokens.logInAs(credentials, request.sourceIp));
  if (!caller) throw new RegistryError('UNAUTHORIZED', 'log in with your username and password (or a personal access token of yours)');
  if (caller.robot) throw new RegistryError('DENIED', 'robot accounts have no personal access tokens');
  if (request.method === 'GET') return list(service, caller);
  // A create or revoke is a change: audited as `token.create` / `token.revoke`, as the admin CLI's
  // are, with the user as the actor, refused ones too (never the secret).
  const action = request.method === 'DELETE' ? 'revoke' : 'create';
  const audit = (outcome: AuditOutcome, detail: Record<string, string>, reason?: string) =>
    tokens.audit?.record({
      action: `token.${action}`,
      actor: actorOf(caller.subject),
      sourceIp: request.sourceIp,
      userAgent: request.headers['user-agent'],
      outcome,
      reason,
      detail: { ...detail, via: 'personal-tokens endpoint' },
    });
  try {
    const { response, token } =
      action === 'revoke'
        ? await revoke(service, caller, target!)
        : await create(service, caller, await readBoundedBody(request.body, request.headers['content-length'], MAX_BODY_BYTES));
    await audit('success', token);
    return response;
  } catch (error) {
    await audit('refused', target === undefined ? {} : { token: target }, error instanceof RegistryError ? error.code : 'error');
    throw error;
  }
}

async function list(service: PersonalTokens, caller: LoggedIn): Promise<RegistryResponse> {
  const now = Date.now();
  const listed = (await service.list(caller.subject)).map((token) => describePersonalToken(token, now));
  return jsonResponse(200, { username: caller.subject, tokens: listed }, NO_STORE);
}

/** A change's answer, and the token it changed as the audit record names it. */
interface Changed {
  response: RegistryResponse;
  token: Record<string, string>;
}

async function revoke(service: PersonalTokens, caller: LoggedIn, target: string): Promise<Changed> {
  if (!(await service.revoke(caller.subject, target))) {
    throw new RegistryError('NAME_UNKNOWN', `you have no personal access token "${target}"`);
  }
  return { response: emptyResponse(204), token: { token: target } };
}

async function create(service: PersonalTokens, caller: LoggedIn, body: Uint8Array): Promise<Changed> {
  if (caller.personalTokenId !== undefined) {
    throw new RegistryError('DENIED', 'a personal access token cannot create tokens: log in with your password to create one');
  }
  const result = await service.create(caller.subject, parseRequest(body));
  if ('refused' in result) {
    throw new RegistryError(result.refused === 'invalid' ? 'NAME_INVALID' : 'DENIED', result.problem, {
      refusal: result.refused === 'invalid' ? 'badRequest' : undefined,
    });
  }
  const { created, secret } = result;
  return {
    response: jsonResponse(201, { ...describePersonalToken(created), username: created.username, secret }, NO_STORE),
    token: { id: created.id, name: created.name },
  };
}

function parseRequest(body: Uint8Array): NewPersonalToken {
  let document: unknown;
  try {
    document = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch {
    throw badRequest('the body must be JSON: {"name": "...", "expiresDays": 90, "grants": ["team-a/*:pull"]}');
  }
  const { name, expiresDays, grants } = (document ?? {}) as Record<string, unknown>;
  if (typeof name !== 'string') throw badRequest('"name" (a string) is required');
  if (expiresDays !== undefined && typeof expiresDays !== 'number') throw badRequest('"expiresDays" is a number of days');
  if (grants !== undefined && (!Array.isArray(grants) || grants.some((grant) => typeof grant !== 'string'))) {
    throw badRequest('"grants" is a list of "<pattern>:<actions>" strings');
  }
  return { name, expiresDays, grants: (grants as string[] | undefined)?.map(grantOf) };
}

function grantOf(text: string): Grant {
  const grant = parseGrantText(text);
  if ('problem' in grant) throw badRequest(grant.problem);
  return grant;
}

function badRequest(message: string): RegistryError {
  return new RegistryError('NAME_INVALID', message, { refusal: 'badRequest' });
}
