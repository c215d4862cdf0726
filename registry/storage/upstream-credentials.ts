import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { randomUUID } from 'node:crypto';
import { DeleteParameterCommand, GetParameterCommand, PutParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';

/**
 * An upstream's user name and password. Printing, logging or serializing it shows
 * `[redacted]`: only `.username` and `.password` read the values.
 */
export class UpstreamCredentials {
  readonly #password: string;

  constructor(
    readonly username: string,
    password: string,
  ) {
    this.#password = password;
  }

  get password(): string {
    return this.#password;
  }

  /** The value of a Basic `Authorization` header. */
  basicAuthorization(): string {
    return `Basic ${Buffer.from(`${this.username}:${this.#password}`).toString('base64')}`;
  }

  toJSON(): string {
    return '[redacted]';
  }

  toString(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return 'UpstreamCredentials [redacted]';
  }
}

/**
 * Where upstream credentials live: never in the table, never in logs. In AWS an SSM SecureString
 * per upstream (`<prefix><name>`, the account's aws/ssm key); locally a JSON file per upstream
 * under an owner-only directory.
 */
export interface UpstreamCredentialStore {
  get(name: string): Promise<UpstreamCredentials | undefined>;
  put(name: string, credentials: UpstreamCredentials): Promise<void>;
  delete(name: string): Promise<void>;
}

function parse(text: string, where: string): UpstreamCredentials {
  const value = JSON.parse(text) as { username?: unknown; password?: unknown };
  if (typeof value.username !== 'string' || typeof value.password !== 'string') throw new Error(`${where} holds no username and password`);
  return new UpstreamCredentials(value.username, value.password);
}

function serialize(credentials: UpstreamCredentials): string {
  return JSON.stringify({ username: credentials.username, password: credentials.password });
}

/** SSM Parameter Store SecureStrings `<prefix><name>`, e.g. `/registry/upstreams/hub`. */
export class SsmUpstreamCredentialStore implements UpstreamCredentialStore {
  constructor(
    private readonly ssm: Pick<SSMClient, 'send'>,
    private readonly prefix: string,
  ) {}

  private parameter(name: string): string {
    return `${this.prefix.replace(/\/?$/, '/')}${name}`;
  }

  async get(name: string): Promise<UpstreamCredentials | undefined> {
    try {
      const { Parameter } = await this.ssm.send(new GetParameterCommand({ Name: this.parameter(name), WithDecryption: true }));
      return Parameter?.Value ? parse(Parameter.Value, `parameter ${this.parameter(name)}`) : undefined;
    } catch (error) {
      if ((error as Error).name === 'ParameterNotFound') return undefined;
      throw error;
    }
  }

  async put(name: string, credentials: UpstreamCredentials): Promise<void> {
    await this.ssm.send(
      new PutParameterCommand({
        Name: this.parameter(name),
        Type: 'SecureString',
        Value: serialize(credentials),
        Overwrite: true,
        Description: `Credentials of the registry's pull-through upstream ${name}`,
      }),
    );
  }

  async delete(name: string): Promise<void> {
    try {
      await this.ssm.send(new DeleteParameterCommand({ Name: this.parameter(name) }));
    } catch (error) {
      if ((error as Error).name !== 'ParameterNotFound') throw error;
    }
  }
}

/**
 * Local use: `<dir>/<name>.json`, the directory 0700 and each file 0600, written to a temporary
 * file and renamed into place; a file others may read is refused rather than used.
 */
export class FileUpstreamCredentialStore implements UpstreamCredentialStore {
  constructor(private readonly dir: string) {}

  private file(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  async get(name: string): Promise<UpstreamCredentials | undefined> {
    const file = this.file(name);
    let mode: number;
    try {
      mode = (await stat(file)).mode;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    if ((mode & 0o077) !== 0) throw new Error(`${file} may be read by others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`);
    return parse(await readFile(file, 'utf8'), file);
  }

  async put(name: string, credentials: UpstreamCredentials): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    const temporary = join(this.dir, `.${name}.${randomUUID()}.tmp`);
    await writeFile(temporary, serialize(credentials), { mode: 0o600, flag: 'wx' });
    await rename(temporary, this.file(name));
  }

  async delete(name: string): Promise<void> {
    await rm(this.file(name), { force: true });
  }
}
