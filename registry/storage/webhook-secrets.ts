import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeleteParameterCommand, GetParameterCommand, PutParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';

/**
 * Where webhook signing secrets are kept: the dispatcher needs each secret itself to sign
 * (an HMAC key cannot be hashed like a password), so it is stored where only the dispatcher and
 * admins read it, never in the table, a listing or a log (docs/events.md).
 */
export interface WebhookSecrets {
  get(name: string): Promise<string | undefined>;
  put(name: string, secret: string): Promise<void>;
  remove(name: string): Promise<void>;
}

/** A fresh secret: 32 random bytes, base64url. */
export function generateWebhookSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** The SSM parameter holding a webhook's secret: under the table's name, so admin CLI and functions agree without a stack output. */
export function webhookSecretParameter(tableName: string, name: string): string {
  return `/${tableName}/webhooks/${name}`;
}

/** In AWS: one SSM SecureString per webhook (encrypted with the account's SSM key). */
export class SsmWebhookSecrets implements WebhookSecrets {
  private readonly cache = new Map<string, { secret: string | undefined; readAt: number }>();

  constructor(
    private readonly ssm: Pick<SSMClient, 'send'>,
    private readonly tableName: string,
    /** How long a secret read is reused (a removed and re-added webhook gets its new secret after this). */
    private readonly cacheMs = 60_000,
  ) {}

  async get(name: string): Promise<string | undefined> {
    const cached = this.cache.get(name);
    if (cached && Date.now() - cached.readAt < this.cacheMs) return cached.secret;
    let secret: string | undefined;
    try {
      const { Parameter } = await this.ssm.send(
        new GetParameterCommand({ Name: webhookSecretParameter(this.tableName, name), WithDecryption: true }),
      );
      secret = Parameter?.Value;
    } catch (error) {
      if ((error as { name?: string }).name !== 'ParameterNotFound') throw error;
    }
    this.cache.set(name, { secret, readAt: Date.now() });
    return secret;
  }

  async put(name: string, secret: string): Promise<void> {
    await this.ssm.send(
      new PutParameterCommand({ Name: webhookSecretParameter(this.tableName, name), Value: secret, Type: 'SecureString', Overwrite: true }),
    );
  }

  async remove(name: string): Promise<void> {
    try {
      await this.ssm.send(new DeleteParameterCommand({ Name: webhookSecretParameter(this.tableName, name) }));
    } catch (error) {
      if ((error as { name?: string }).name !== 'ParameterNotFound') throw error;
    }
  }
}

/**
 * Locally: one file per webhook under `<data dir>/webhook-secrets/`, readable by its owner only
 * (0600, the directory 0700), beside the other local secrets (the token signing key).
 */
export class FileWebhookSecrets implements WebhookSecrets {
  constructor(private readonly dir: string) {}

  async get(name: string): Promise<string | undefined> {
    try {
      return (await readFile(this.path(name), 'utf8')).trim();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async put(name: string, secret: string): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFile(this.path(name), secret, { mode: 0o600 });
    await chmod(this.path(name), 0o600);
  }

  async remove(name: string): Promise<void> {
    await rm(this.path(name), { force: true });
  }

  private path(name: string): string {
    // Webhook names are checked ([a-z0-9-]), so they are plain file names.
    return join(this.dir, name);
  }
}
