/**
 * The SDK clients a command needs, made on first use: a user command on a registry without
 * authentication should fail for that reason, not because there is no user pool client.
 */
import { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { AccessStore } from '../../registry/storage/access-store.js';
import { LoginStateStore } from '../../registry/storage/login-state-store.js';
import { RobotStore } from '../../registry/storage/robot-store.js';
import { PersonalTokenStore } from '../../registry/storage/personal-token-store.js';
import { PersonalTokens } from '../../registry/services/auth/personal-tokens.js';
import { TrustStore } from '../../registry/storage/trust-store.js';
import { auditLogFor, type AuditLog } from '../../registry/services/audit/audit-log.js';
import { auditConfig } from '../../registry/config/config.js';
import { jsonLogger } from '../../registry/support/logger.js';
import { WebhookStore } from '../../registry/storage/webhook-store.js';
import { SSMClient } from '@aws-sdk/client-ssm';
import { UpstreamStore } from '../../registry/storage/upstream-store.js';
import {
  FileUpstreamCredentialStore,
  SsmUpstreamCredentialStore,
  type UpstreamCredentialStore,
} from '../../registry/storage/upstream-credentials.js';
import { AdminError } from './errors.js';
import type { AdminTarget } from './targets.js';

/** A record that cannot be written is told on stderr: stdout stays the command's output. */
const STDERR_LOGGER = jsonLogger((line) => process.stderr.write(`${line}\n`));

export interface UserPool {
  cognito: CognitoIdentityProviderClient;
  userPoolId: string;
}

export class AdminClients {
  private cognito: CognitoIdentityProviderClient | undefined;
  private dynamo: DynamoDBDocumentClient | undefined;
  private ssm: SSMClient | undefined;

  constructor(readonly target: AdminTarget) {}

  userPool(): UserPool {
    const { userPoolId } = this.target;
    if (!userPoolId) {
      throw new AdminError(
        this.target.dynamoEndpoint
          ? `${this.target.description} runs without authentication: start it with REGISTRY_AUTH=cognito npm start`
          : `no user pool for ${this.target.description}: give --user-pool-id or --stack`,
      );
    }
    this.cognito ??= new CognitoIdentityProviderClient({
      region: this.target.region,
      endpoint: this.target.cognitoEndpoint,
      credentials: this.target.credentials,
    });
    return { cognito: this.cognito, userPoolId };
  }

  accessStore(): AccessStore {
    return new AccessStore(this.documentClient(), this.tableName());
  }

  robotStore(): RobotStore {
    return new RobotStore(this.documentClient(), this.tableName());
  }

  /** Users' personal access tokens, in the registry's table. */
  personalTokens(): PersonalTokens {
    return new PersonalTokens(new PersonalTokenStore(this.documentClient(), this.tableName()));
  }

  trustStore(): TrustStore {
    return new TrustStore(this.documentClient(), this.tableName());
  }

  /** Whether the target is a registry on local stand-ins (npm start): trusts may name loopback http issuers, webhooks http and loopback URLs. */
  isLocal(): boolean {
    return this.target.dynamoEndpoint !== undefined;
  }

  /** Users' session generations (and failed-login counters), in the registry's table. */
  loginStates(): LoginStateStore {
    return new LoginStateStore(this.documentClient(), this.tableName());
  }

  /** The registry's audit log (docs/audit-log.md); the retention is AUDIT_RETENTION_DAYS here, else 90 days. */
  auditLog(): AuditLog {
    return auditLogFor({ tableName: this.tableName(), audit: auditConfig() }, { dynamo: this.documentClient() }, STDERR_LOGGER);
  }

  /** Whether a table is known, so that changes can be recorded in its audit log. */
  hasTable(): boolean {
    return this.target.tableName !== undefined;
  }

  webhookStore(): WebhookStore {
    return new WebhookStore(this.documentClient(), this.tableName());
  }

  upstreamStore(): UpstreamStore {
    return new UpstreamStore(this.documentClient(), this.tableName());
  }

  /** Upstream credentials: the local registry's owner-only directory, or the stack's SSM SecureStrings. */
  upstreamCredentials(): UpstreamCredentialStore {
    const { upstreamCredentialsDir, upstreamCredentialsPrefix } = this.target;
    if (upstreamCredentialsDir) return new FileUpstreamCredentialStore(upstreamCredentialsDir);
    if (!upstreamCredentialsPrefix) {
      throw new AdminError(`${this.target.description} has no place for upstream credentials: its stack has no output UpstreamCredentialsPrefix`);
    }
    this.ssm ??= new SSMClient({ region: this.target.region });
    return new SsmUpstreamCredentialStore(this.ssm, upstreamCredentialsPrefix);
  }

  /** Whether group names can be checked against the user pool. */
  hasUserPool(): boolean {
    return this.target.userPoolId !== undefined;
  }

  destroy(): void {
    this.cognito?.destroy();
    this.dynamo?.destroy();
    this.ssm?.destroy();
  }

  tableName(): string {
    if (!this.target.tableName) throw new AdminError(`no table for ${this.target.description}: give --table-name or --stack`);
    return this.target.tableName;
  }

  private documentClient(): DynamoDBDocumentClient {
    this.dynamo ??= DynamoDBDocumentClient.from(
      new DynamoDBClient({
        region: this.target.region,
        endpoint: this.target.dynamoEndpoint,
        credentials: this.target.credentials,
      }),
      { marshallOptions: { removeUndefinedValues: true } },
    );
    return this.dynamo;
  }
}
