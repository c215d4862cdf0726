/**
 * cognito-local as the local stand-in for the Cognito user pool (`REGISTRY_AUTH=cognito npm start`).
 *
 * Why a child process: cognito-local reads PORT and HOST when its config module loads and
 * keeps its state in `.cognito/` relative to the working directory, so running it in-process
 * would mean mutating process.env and process.cwd() of the registry itself; its
 * createDefaultServer takes neither a port nor a directory. As a child it gets its own cwd
 * (`<dataDir>/cognito`) and env, its aws-sdk v2 and pino output stay out of our process, and a
 * stop is a signal.
 *
 * Why a front server: cognito-local listens on a loopback port only this module knows; callers
 * talk to a small HTTP front in this process that forwards everything and corrects where
 * cognito-local answers differently from Cognito in ways the registry depends on:
 * - a disabled user could still log in (cognito-local never looks at `Enabled`): refused with
 *   NotAuthorizedException "User is disabled.", for passwords and refresh tokens alike;
 * - a wrong password was InvalidPasswordException and an unknown user a NotAuthorizedException
 *   without message: both become NotAuthorizedException "Incorrect username or password.", as
 *   in a pool that prevents user-existence errors;
 * - CreateGroup on an existing group replaced it and dropped its members: GroupExistsException;
 * - AdminUserGlobalSignOut is not implemented: answered as Cognito does (UserNotFoundException,
 *   or success); the registry never uses the pool's own refresh tokens, so nothing else is due;
 * - the OpenID configuration named localhost:9229: it names the real issuer and JWKS URL.
 * The front also owns the public port, so the endpoint, and with it the token issuer, is known
 * before cognito-local starts.
 *
 * The pool uses plain usernames (`alice`): cognito-local's default pool settings ask for e-mail
 * addresses, which `.cognito/config.json` overrides.
 *
 * Local tokens are signed with the RSA key that ships inside the cognito-local package, so
 * anyone can forge them: local authentication is a rehearsal of the AWS setup, not a security
 * boundary.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { isIPv6, type AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AdminAddUserToGroupCommand,
  AdminCreateUserCommand,
  AdminGetUserCommand,
  AdminSetUserPasswordCommand,
  CognitoIdentityProviderClient,
  CreateGroupCommand,
  CreateUserPoolClientCommand,
  CreateUserPoolCommand,
  DescribeUserPoolClientCommand,
  DescribeUserPoolCommand,
  ListGroupsCommand,
  GroupExistsException,
  ResourceNotFoundException,
  UserNotFoundException,
} from '@aws-sdk/client-cognito-identity-provider';
import { LOCAL_CREDENTIALS } from './local-credentials.js';
import { DEFAULT_ADMIN_GROUP } from '../../registry/model/auth/access-model.js';
import { findFreePort, hasExited, keepOutputTail, stopChildProcess } from './child-processes.js';

export interface CognitoStandIn {
  /** The Cognito API endpoint, also the issuer domain of its tokens. */
  endpoint: string;
  /** Stops cognito-local and the front; safe to call more than once. */
  stop(): Promise<void>;
}

export interface LocalUserPool {
  userPoolId: string;
  clientId: string;
  /** `${endpoint}/${userPoolId}`: the `iss` claim of the pool's tokens. */
  issuer: string;
  jwksUri: string;
}

const POOL_NAME = 'registry';
const CLIENT_NAME = 'registry-token-endpoint';
/** Where ensureLocalUserPool remembers the ids, next to cognito-local's own `.cognito/`. */
const POOL_IDS_FILE = 'registry-user-pool.json';
/** cognito-local is reached only through the front, so it never listens beyond loopback. */
const BACKEND_HOST = '127.0.0.1';
const START_TIMEOUT_MS = 30_000;
const START_ATTEMPTS = 3;
const POLL_INTERVAL_MS = 100;
/** Far above any Cognito API request; the front buffers only the calls it corrects. */
const MAX_BUFFERED_BODY_BYTES = 1024 * 1024;
const TARGET_PREFIX = 'AWSCognitoIdentityProviderService.';

const require = createRequire(import.meta.url);

export async function startCognitoStandIn(options: { dataDir: string; host?: string }): Promise<CognitoStandIn> {
  const host = options.host ?? '127.0.0.1';
  const cognitoDir = cognitoDirOf(options.dataDir);
  const front = new Front();
  const endpoint = await front.listen(host);
  try {
    await writeCognitoLocalConfig(cognitoDir, endpoint);
    const backend = await startCognitoLocal(cognitoDir);
    front.forwardTo(backend.endpoint);
    let stopping: Promise<void> | undefined;
    return {
      endpoint,
      stop: () => (stopping ??= front.close().then(backend.stop)),
    };
  } catch (error) {
    await front.close();
    throw error;
  }
}

function cognitoDirOf(dataDir: string): string {
  return resolve(dataDir, 'cognito');
}

/**
 * cognito-local merges `.cognito/config.json` over its defaults at start. The file belongs to
 * this module and is rewritten on every start, because the issuer domain follows the front's
 * (free, so changing) port.
 */
async function writeCognitoLocalConfig(cognitoDir: string, endpoint: string): Promise<void> {
  const configDir = join(cognitoDir, '.cognito');
  await mkdir(configDir, { recursive: true });
  const config = {
    // An empty list replaces the default ["email"]: usernames are plain names.
    UserPoolDefaults: { UsernameAttributes: [] },
    TokenConfig: { IssuerDomain: endpoint },
  };
  await writeJsonAtomically(join(configDir, 'config.json'), config);
}

// ---------------------------------------------------------------------------------------------
// cognito-local, the child process

interface RunningService {
  endpoint: string;
  stop(): Promise<void>;
}

async function startCognitoLocal(cognitoDir: string): Promise<RunningService> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startCognitoLocalOnFreePort(cognitoDir);
    } catch (error) {
      // Another process can take the port between findFreePort() and cognito-local binding it.
      const portTaken = error instanceof CognitoLocalStartError && error.portTaken;
      if (!portTaken || attempt === START_ATTEMPTS) throw error;
    }
  }
}

async function startCognitoLocalOnFreePort(cognitoDir: string): Promise<RunningService> {
  const port = await findFreePort(BACKEND_HOST);
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: BACKEND_HOST, NODE_NO_WARNINGS: '1' };
  // Per-request debug logs, the development mode's dumps, and a fixed confirmation code.
  delete env.DEBUG;
  delete env.COGNITO_LOCAL_DEVMODE;
  delete env.CODE;
  const child = spawn(process.execPath, [require.resolve('cognito-local/lib/bin/start.js')], {
    cwd: cognitoDir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const endpoint = `http://${BACKEND_HOST}:${port}`;
  const stop = stopChildProcess(child);
  try {
    await waitUntilHealthy(endpoint, child);
  } catch (error) {
    await stop();
    throw error;
  }
  return { endpoint, stop };
}

class CognitoLocalStartError extends Error {
  readonly portTaken: boolean;

  constructor(reason: string, consoleOutput: string) {
    super(`cognito-local did not start (${reason})\n${consoleOutput}`.trim());
    this.portTaken = /EADDRINUSE/.test(consoleOutput);
  }
}

async function waitUntilHealthy(endpoint: string, child: ChildProcess): Promise<void> {
  const output = keepOutputTail(child);
  let spawnError: Error | undefined;
  child.once('error', (error) => (spawnError = error));
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (spawnError) throw new CognitoLocalStartError(spawnError.message, output());
    if (hasExited(child)) {
      throw new CognitoLocalStartError(`exited with ${child.signalCode ?? `code ${child.exitCode}`}`, output());
    }
    if (await answersHealth(endpoint)) return;
    if (Date.now() > deadline) {
      throw new CognitoLocalStartError(`no answer on ${endpoint} within ${START_TIMEOUT_MS / 1000} s`, output());
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

async function answersHealth(endpoint: string): Promise<boolean> {
  try {
    const response = await fetch(`${endpoint}/health`);
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// The front: forwards to cognito-local, correcting the answers listed at the top

interface BufferedResponse {
  status: number;
  contentType: string;
  body: string;
}

type Correction = (front: Front, request: BufferedRequest) => Promise<BufferedResponse>;

interface BufferedRequest {
  target: string;
  contentType: string;
  body: string;
}

const CORRECTIONS: Record<string, Correction> = {
  InitiateAuth: correctLogin,
  AdminInitiateAuth: correctLogin,
  CreateGroup: refuseExistingGroup,
  AdminUserGlobalSignOut: globalSignOut,
};

const OPENID_CONFIGURATION = /^\/([^/?]+)\/\.well-known\/openid-configuration(?:\?|$)/;

class Front {
  private readonly server: Server;
  private backend: string | undefined;
  private endpoint = '';
  private closing: Promise<void> | undefined;

  constructor() {
    this.server = createHttpServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        if (!response.headersSent) sendJson(response, 502, { __type: 'CognitoStandInError', message: String(error) });
        else response.destroy();
      });
    });
  }

  async listen(host: string): Promise<string> {
    this.server.listen(0, host);
    await once(this.server, 'listening');
    const { port } = this.server.address() as AddressInfo;
    this.endpoint = `http://${isIPv6(host) ? `[${host}]` : host}:${port}`;
    return this.endpoint;
  }

  forwardTo(backend: string): void {
    this.backend = backend;
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolveClose) => {
      this.server.closeAllConnections();
      this.server.close(() => resolveClose());
    });
    return this.closing;
  }

  /** Calls cognito-local's API directly, bypassing the corrections. */
  async call(target: string, contentType: string, body: string): Promise<BufferedResponse> {
    const response = await fetch(`${this.requireBackend()}/`, {
      method: 'POST',
      headers: { 'content-type': contentType, 'x-amz-target': target },
      body,
    });
    return { status: response.status, contentType: response.headers.get('content-type') ?? contentType, body: await response.text() };
  }

  async callJson(operation: string, input: object): Promise<{ status: number; output: Record<string, unknown> }> {
    const answer = await this.call(TARGET_PREFIX + operation, 'application/x-amz-json-1.1', JSON.stringify(input));
    return { status: answer.status, output: parseJsonObject(answer.body) };
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const openId = request.method === 'GET' ? OPENID_CONFIGURATION.exec(request.url ?? '') : null;
    if (openId) {
      const issuer = `${this.endpoint}/${openId[1]}`;
      sendJson(response, 200, {
        issuer,
        jwks_uri: `${issuer}/.well-known/jwks.json`,
        id_token_signing_alg_values_supported: ['RS256'],
      });
      return;
    }
    const target = request.headers['x-amz-target'];
    if (request.method !== 'POST' || typeof target !== 'string' || !target.startsWith(TARGET_PREFIX)) {
      return this.forward(request, response);
    }
    const correction = CORRECTIONS[target.slice(TARGET_PREFIX.length)];
    if (!correction) return this.forward(request, response);
    const body = await readBody(request);
    const answer = await correction(this, { target, contentType: request.headers['content-type'] ?? '', body });
    response.writeHead(answer.status, { 'content-type': answer.contentType });
    response.end(answer.body);
  }

  private forward(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const backend = new URL(this.requireBackend());
    const { host: _host, ...headers } = request.headers;
    return new Promise((resolveForward, reject) => {
      const upstream = httpRequest({ host: backend.hostname, port: backend.port, method: request.method, path: request.url, headers }, (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
        answer.once('end', resolveForward);
        answer.once('error', reject);
      });
      upstream.once('error', reject);
      request.pipe(upstream);
    });
  }

  private requireBackend(): string {
    if (!this.backend) throw new Error('cognito-local is not running');
    return this.backend;
  }
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BUFFERED_BODY_BYTES) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(response: ServerResponse, status: number, body: object): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

function cognitoError(type: string, message: string): BufferedResponse {
  return { status: 400, contentType: 'application/x-amz-json-1.1', body: JSON.stringify({ __type: type, message }) };
}

function parseJsonObject(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Cognito's answers to a refused login; cognito-local's codes differ and it ignores `Enabled`. */
async function correctLogin(front: Front, request: BufferedRequest): Promise<BufferedResponse> {
  const answer = await front.call(request.target, request.contentType, request.body);
  const output = parseJsonObject(answer.body);
  if (answer.status === 400 && (output.__type === 'InvalidPasswordException' || output.__type === 'NotAuthorizedException')) {
    return cognitoError('NotAuthorizedException', 'Incorrect username or password.');
  }
  const accessToken = (output.AuthenticationResult as { AccessToken?: unknown } | undefined)?.AccessToken;
  if (answer.status !== 200 || typeof accessToken !== 'string') return answer;
  // The token comes straight from cognito-local, so reading its claims unverified is fine.
  const claims = decodeJwtPayload(accessToken);
  const userPoolId = typeof claims.iss === 'string' ? claims.iss.slice(claims.iss.lastIndexOf('/') + 1) : '';
  const user = await front.callJson('AdminGetUser', { UserPoolId: userPoolId, Username: claims.username });
  if (user.status === 200 && user.output.Enabled === false) {
    return cognitoError('NotAuthorizedException', 'User is disabled.');
  }
  return answer;
}

/** cognito-local's CreateGroup overwrites an existing group, members and all. (ListGroups, not
 * GetGroup: GetGroup fails with a 500 in a pool that has no group yet.) */
async function refuseExistingGroup(front: Front, request: BufferedRequest): Promise<BufferedResponse> {
  const input = parseJsonObject(request.body);
  const { status, output } = await front.callJson('ListGroups', { UserPoolId: input.UserPoolId });
  const groups = Array.isArray(output.Groups) ? (output.Groups as { GroupName?: unknown }[]) : [];
  if (status === 200 && groups.some((group) => group.GroupName === input.GroupName)) {
    return cognitoError('GroupExistsException', 'A group with the name already exists.');
  }
  return front.call(request.target, request.contentType, request.body);
}

/** Succeeds for an existing user, as Cognito's does; cognito-local does not implement it. */
async function globalSignOut(front: Front, request: BufferedRequest): Promise<BufferedResponse> {
  const input = parseJsonObject(request.body);
  const user = await front.callJson('AdminGetUser', { UserPoolId: input.UserPoolId, Username: input.Username });
  if (user.status !== 200) return { status: user.status, contentType: 'application/x-amz-json-1.1', body: JSON.stringify(user.output) };
  return { status: 200, contentType: 'application/x-amz-json-1.1', body: '{}' };
}

function decodeJwtPayload(jwt: string): Record<string, unknown> {
  const payload = jwt.split('.')[1] ?? '';
  return parseJsonObject(Buffer.from(payload, 'base64url').toString('utf8'));
}

// ---------------------------------------------------------------------------------------------
// The registry's user pool

/** A Cognito client for a local endpoint (cognito-local ignores the credentials). */
export function localCognitoClient(endpoint: string): CognitoIdentityProviderClient {
  return new CognitoIdentityProviderClient({ endpoint, region: 'us-east-1', credentials: LOCAL_CREDENTIALS });
}

/**
 * Creates (once; ids persisted under dataDir so restarts reuse the pool) a user pool with plain
 * usernames, an app client without secret allowing USER_PASSWORD_AUTH, and the group
 * `registry-admins`.
 */
export async function ensureLocalUserPool(endpoint: string, dataDir: string): Promise<LocalUserPool> {
  const idsFile = join(cognitoDirOf(dataDir), POOL_IDS_FILE);
  const cognito = localCognitoClient(endpoint);
  try {
    let ids = await readPoolIds(idsFile);
    if (!ids || !(await poolExists(cognito, ids))) {
      ids = await createPool(cognito);
      await writeJsonAtomically(idsFile, ids);
    }
    await ensureGroup(cognito, ids.userPoolId, DEFAULT_ADMIN_GROUP, 'Administers the whole registry');
    const issuer = `${endpoint}/${ids.userPoolId}`;
    return { ...ids, issuer, jwksUri: `${issuer}/.well-known/jwks.json` };
  } finally {
    cognito.destroy();
  }
}

interface PoolIds {
  userPoolId: string;
  clientId: string;
}

async function readPoolIds(file: string): Promise<PoolIds | undefined> {
  try {
    const ids = JSON.parse(await readFile(file, 'utf8')) as Partial<PoolIds>;
    if (typeof ids.userPoolId === 'string' && typeof ids.clientId === 'string') {
      return { userPoolId: ids.userPoolId, clientId: ids.clientId };
    }
    return undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function poolExists(cognito: CognitoIdentityProviderClient, ids: PoolIds): Promise<boolean> {
  try {
    await cognito.send(new DescribeUserPoolCommand({ UserPoolId: ids.userPoolId }));
    await cognito.send(new DescribeUserPoolClientCommand({ UserPoolId: ids.userPoolId, ClientId: ids.clientId }));
    return true;
  } catch (error) {
    if (error instanceof ResourceNotFoundException) return false;
    throw error;
  }
}

async function createPool(cognito: CognitoIdentityProviderClient): Promise<PoolIds> {
  const { UserPool } = await cognito.send(
    new CreateUserPoolCommand({ PoolName: POOL_NAME, AdminCreateUserConfig: { AllowAdminCreateUserOnly: true } }),
  );
  const userPoolId = UserPool?.Id;
  if (!userPoolId) throw new Error('cognito-local created a user pool without an id');
  const { UserPoolClient } = await cognito.send(
    new CreateUserPoolClientCommand({
      UserPoolId: userPoolId,
      ClientName: CLIENT_NAME,
      GenerateSecret: false,
      ExplicitAuthFlows: ['ALLOW_USER_PASSWORD_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH'],
    }),
  );
  const clientId = UserPoolClient?.ClientId;
  if (!clientId) throw new Error('cognito-local created an app client without an id');
  return { userPoolId, clientId };
}

/** The front refuses to create a group twice; this also keeps cognito-local from replacing one
 * when called without the front. */
async function ensureGroup(cognito: CognitoIdentityProviderClient, userPoolId: string, name: string, description: string) {
  // cognito-local answers GetGroup with a 500 while the pool has no group at all; every other
  // group call works once one exists, which this group guarantees for the registry's pool.
  const { Groups } = await cognito.send(new ListGroupsCommand({ UserPoolId: userPoolId }));
  if (Groups?.some((group) => group.GroupName === name)) return;
  try {
    await cognito.send(new CreateGroupCommand({ UserPoolId: userPoolId, GroupName: name, Description: description }));
  } catch (error) {
    if (!(error instanceof GroupExistsException)) throw error;
  }
}

/**
 * Creates the admin user if missing (AdminCreateUser + AdminSetUserPassword Permanent=true +
 * AdminAddUserToGroup registry-admins). Answers whether it was created. An existing user keeps
 * its password: it may have been changed on purpose.
 */
export async function ensureAdminUser(endpoint: string, pool: LocalUserPool, username: string, password: string): Promise<boolean> {
  const cognito = localCognitoClient(endpoint);
  try {
    if (await userExists(cognito, pool.userPoolId, username)) return false;
    await cognito.send(new AdminCreateUserCommand({ UserPoolId: pool.userPoolId, Username: username, MessageAction: 'SUPPRESS' }));
    await cognito.send(new AdminSetUserPasswordCommand({ UserPoolId: pool.userPoolId, Username: username, Password: password, Permanent: true }));
    await cognito.send(new AdminAddUserToGroupCommand({ UserPoolId: pool.userPoolId, Username: username, GroupName: DEFAULT_ADMIN_GROUP }));
    return true;
  } finally {
    cognito.destroy();
  }
}

async function userExists(cognito: CognitoIdentityProviderClient, userPoolId: string, username: string): Promise<boolean> {
  try {
    await cognito.send(new AdminGetUserCommand({ UserPoolId: userPoolId, Username: username }));
    return true;
  } catch (error) {
    if (error instanceof UserNotFoundException) return false;
    throw error;
  }
}

async function writeJsonAtomically(path: string, value: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(value, null, 2)}\n`);
  await rename(temporary, path);
}
