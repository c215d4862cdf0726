import { RegistryError } from '../model/oci/errors.js';
import { byName, errorResponse } from './error-response.js';
import { readBoundedBody } from './request-body.js';
import { jsonResponse } from './responses.js';
import type { RegistryRequest, RegistryResponse } from '../model/http.js';
import type { Logger } from '../support/logger.js';
import { parseScope, type ResourceScope } from '../model/auth/scopes.js';
import { recordRequest } from './telemetry.js';
import { answerPersonalTokens, isPersonalTokensPath } from './personal-token-endpoint.js';
import type { IssuedToken, TokenRequest, TokenService } from '../services/auth/token-service.js';

const MAX_FORM_BYTES = 64 * 1024;

/**
 * The token endpoint as docker, podman, skopeo, containerd and helm call it:
 * `GET /token` with HTTP Basic credentials (or none, for anonymous pulls), and the OAuth2 form
 * `POST /token` with `grant_type=password` or `grant_type=refresh_token`.
 */
export function createTokenEndpoint(tokens: TokenService, logger: Logger) {
  return async (request: RegistryRequest): Promise<RegistryResponse> => {
    const started = performance.now();
    const response = await answer(tokens, logger, request);
    recordRequest(logger, {
      requestId: request.requestId,
      operation: 'token',
      method: request.method,
      path: request.path,
      status: response.status,
      durationMs: Math.round(performance.now() - started),
    });
    return response;
  };
}

async function answer(tokens: TokenService, logger: Logger, request: RegistryRequest): Promise<RegistryResponse> {
  try {
    if (isPersonalTokensPath(request.path)) return await answerPersonalTokens(tokens, request, basicCredentials(request.headers.authorization));
    const entry = request.entry ? { entry: request.entry } : {};
    if (request.method === 'GET') return tokenResponse(await tokens.issue({ ...fromQuery(request), ...entry }));
    if (request.method === 'POST') return tokenResponse(await tokens.issue({ ...(await fromForm(request)), ...entry }));
    throw new RegistryError('UNSUPPORTED', `${request.method} is not supported here`, { allowedMethods: ['GET', 'POST'] });
  } catch (error) {
    return errorResponse(error, request, logger, byName);
  }
}

function fromQuery(request: RegistryRequest): TokenRequest {
  return {
    scopes: scopesOf(request.query.getAll('scope')),
    offline: request.query.get('offline_token') === 'true',
    credentials: basicCredentials(request.headers.authorization),
    source: request.sourceIp,
    userAgent: request.headers['user-agent'],
  };
}

async function fromForm(request: RegistryRequest): Promise<TokenRequest> {
  const body = await readBoundedBody(request.body, request.headers['content-length'], MAX_FORM_BYTES);
  const form = new URLSearchParams(Buffer.from(body).toString('utf8'));
  const scopes = scopesOf((form.get('scope') ?? '').split(' '));
  const offline = form.get('access_type') === 'offline';
  switch (form.get('grant_type')) {
    case 'password': {
      const username = form.get('username');
      const password = form.get('password');
      if (!username || password === null) throw new RegistryError('UNAUTHORIZED', 'username and password are required');
      return { scopes, offline, credentials: { username, password }, source: request.sourceIp, userAgent: request.headers['user-agent'] };
    }
    case 'refresh_token': {
      const refreshToken = form.get('refresh_token');
      if (!refreshToken) throw new RegistryError('UNAUTHORIZED', 'refresh_token is required');
      return { scopes, offline, refreshToken, source: request.sourceIp, userAgent: request.headers['user-agent'] };
    }
    default:
      throw new RegistryError('UNSUPPORTED', 'grant_type must be password or refresh_token', { refusal: 'badRequest' });
  }
}

function scopesOf(values: string[]): ResourceScope[] {
  return values.map((value) => parseScope(value.trim())).filter((scope) => scope !== undefined);
}

function basicCredentials(header: string | undefined): TokenRequest['credentials'] {
  const encoded = /^Basic\s+(\S+)$/i.exec(header ?? '')?.[1];
  if (!encoded) return undefined;
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) throw new RegistryError('UNAUTHORIZED', 'malformed Basic credentials');
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Both spellings of the token: `token` for the Docker flow, `access_token` for OAuth2. */
function tokenResponse(issued: IssuedToken): RegistryResponse {
  const body: Record<string, unknown> = {
    token: issued.token,
    access_token: issued.token,
    expires_in: issued.expiresIn,
    issued_at: issued.issuedAt,
    scope: issued.scope,
  };
  if (issued.refreshToken) body.refresh_token = issued.refreshToken;
  return jsonResponse(200, body, { 'Cache-Control': 'no-store' });
}
