import { DEFAULT_ADMIN_GROUP } from '../registry/model/auth/access-model.js';
import type { RegistryOptions } from './registry-options.js';
import type { EnvironmentValues } from '../registry/config/environment.js';

/**
 * Environment of Docker token authentication, shared by the token endpoint and the registry
 * functions of every region (registry/config/config.ts, `authConfigFromEnv`), so that all of
 * them derive the same token issuer and audience from one URL.
 *
 * @param publicBaseUrl the primary registry's URL: the realm clients fetch tokens from is
 *   `<publicBaseUrl>/token`, and tokens name its host as their audience. Replica functions get
 *   the primary's URL too, so that they accept the primary's tokens and send clients there.
 */
export function tokenAuthEnvironment(publicBaseUrl: string, options: RegistryOptions): EnvironmentValues {
  return {
    REGISTRY_AUTH: 'token',
    PUBLIC_BASE_URL: publicBaseUrl,
    ADMIN_GROUP: DEFAULT_ADMIN_GROUP,
    TOKEN_TTL_SECONDS: String(options.tokenTtlSeconds),
    REFRESH_TOKEN_TTL_SECONDS: String(options.refreshTokenTtlSeconds),
    // Not read by the code: the functions cache the token key per execution environment, and a
    // changed environment makes Lambda start fresh ones, which read the rotated key.
    TOKEN_KEY_GENERATION: String(options.tokenKeyGeneration),
  };
}
