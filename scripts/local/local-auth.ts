import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuthConfig, RegistryConfig } from '../../registry/config/config.js';
import type { TokenAuthorizer } from '../../registry/services/auth/authorizer.js';
import { tokenAuthorizerFor, tokenServiceFor } from '../../registry/services/auth/deployed-auth.js';
import type { AuditLog } from '../../registry/services/audit/audit-log.js';
import { userPoolIdentities } from '../../registry/services/auth/user-pool.js';
import { generateSigningKeyPem, signingKeyFromPem } from '../../registry/services/auth/signing-keys.js';
import type { TokenService } from '../../registry/services/auth/token-service.js';
import type { AwsClients } from '../../registry/storage/aws-clients.js';
import type { Logger } from '../../registry/support/logger.js';
import { LOCAL_CREDENTIALS } from './local-credentials.js';
import { ensureAdminUser, ensureLocalUserPool, startCognitoStandIn, type LocalUserPool } from './cognito-stand-in.js';

export interface LocalAuth {
  authorizer: TokenAuthorizer;
  tokens: TokenService;
  pool: LocalUserPool;
  cognitoEndpoint: string;
  stop(): Promise<void>;
}

export interface LocalAuthOptions {
  dataDir: string;
  host: string;
  auth: AuthConfig;
  config: RegistryConfig;
  clients: AwsClients;
  admin: { username: string; password: string };
  logger: Logger;
  /** Where logins are recorded: the registry's own audit log. */
  audit?: AuditLog;
}

/**
 * `REGISTRY_AUTH=cognito npm start`: cognito-local for logins and a token key kept in the data
 * directory, wired into exactly the authorizer and token service the deployed functions use.
 * Only where keys come from differs: a file here, SSM there.
 */
export async function startLocalAuth(options: LocalAuthOptions): Promise<LocalAuth & { adminCreated: boolean }> {
  const cognito = await startCognitoStandIn({ dataDir: options.dataDir, host: options.host });
  try {
    const pool = await ensureLocalUserPool(cognito.endpoint, options.dataDir);
    const adminCreated = await ensureAdminUser(cognito.endpoint, pool, options.admin.username, options.admin.password);
    const key = signingKeyFromPem(await localSigningKeyPem(options.dataDir));
    const { auth, config, clients } = options;
    const users = await userPoolIdentities({
      userPoolId: pool.userPoolId,
      clientId: pool.clientId,
      region: config.region,
      endpoint: cognito.endpoint,
      credentials: LOCAL_CREDENTIALS,
    });
    // The local registry, and only it, lets trusts name a test issuer on loopback http.
    const tokens = tokenServiceFor(key, { ...auth, allowLoopbackHttpIssuers: true }, users, clients, config.tableName, options.logger, options.audit);
    return {
      authorizer: tokenAuthorizerFor(
        [key],
        auth,
        clients,
        config.tableName,
        config.pullThrough?.dockerMirrorBaseUrl && `${config.pullThrough.dockerMirrorBaseUrl}/token`,
      ),
      tokens,
      pool,
      cognitoEndpoint: cognito.endpoint,
      adminCreated,
      stop: () => cognito.stop(),
    };
  } catch (error) {
    await cognito.stop();
    throw error;
  }
}

/** Generated on first start and kept, so tokens outlive a restart as they outlive a deploy. */
export async function localSigningKeyPem(dataDir: string): Promise<string> {
  const path = join(dataDir, 'token-signing-key.pem');
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const pem = generateSigningKeyPem();
    await writeFile(path, pem, { mode: 0o600, flag: 'wx' });
    return pem;
  }
}
