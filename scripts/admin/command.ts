import type { TargetFlags } from './targets.js';
/**
 * The shape of an admin CLI command, the options any command may take, and the output it
 * writes. Each command lists the options it accepts; the parser refuses the others.
 */
import type { AdminClients } from './clients.js';

export const TARGET_OPTIONS = {
  local: { type: 'boolean' },
  'data-dir': { type: 'string' },
  stack: { type: 'string' },
  region: { type: 'string' },
  'user-pool-id': { type: 'string' },
  'table-name': { type: 'string' },
  registry: { type: 'string' },
} as const;

export const COMMAND_OPTIONS = {
  password: { type: 'string' },
  'password-stdin': { type: 'boolean' },
  group: { type: 'string', multiple: true },
  grant: { type: 'string', multiple: true },
  expires: { type: 'string' },
  description: { type: 'string' },
  json: { type: 'boolean' },
  name: { type: 'string' },
  'revoke-tokens': { type: 'boolean' },
  issuer: { type: 'string' },
  audience: { type: 'string' },
  claim: { type: 'string', multiple: true },
  'max-lifetime': { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  repository: { type: 'string' },
  user: { type: 'string' },
  action: { type: 'string' },
  url: { type: 'string' },
  events: { type: 'string' },
  pattern: { type: 'string' },
  'secret-stdin': { type: 'boolean' },
  'allow-private': { type: 'boolean' },
  // upstream (scripts/admin/upstream-commands.ts)
  prefix: { type: 'string' },
  username: { type: 'string' },
  'tag-ttl': { type: 'string' },
  'keep-days': { type: 'string' },
  'docker-hub': { type: 'boolean' },
  ns: { type: 'string', multiple: true },
  replace: { type: 'boolean' },
  image: { type: 'string' },
} as const;

export const ALL_OPTIONS = { help: { type: 'boolean', short: 'h' }, ...TARGET_OPTIONS, ...COMMAND_OPTIONS } as const;

export type CommandOption = keyof typeof COMMAND_OPTIONS;

/** Option values as node:util parseArgs gives them for ALL_OPTIONS. */
export interface OptionValues extends TargetFlags {
  help?: boolean;
  password?: string;
  'password-stdin'?: boolean;
  group?: string[];
  grant?: string[];
  expires?: string;
  description?: string;
  json?: boolean;
  name?: string;
  'revoke-tokens'?: boolean;
  issuer?: string;
  audience?: string;
  claim?: string[];
  'max-lifetime'?: string;
  since?: string;
  until?: string;
  repository?: string;
  user?: string;
  action?: string;
  url?: string;
  events?: string;
  pattern?: string;
  'secret-stdin'?: boolean;
  'allow-private'?: boolean;
  prefix?: string;
  username?: string;
  'tag-ttl'?: string;
  'keep-days'?: string;
  'docker-hub'?: boolean;
  ns?: string[];
  replace?: boolean;
  image?: string;
}

export interface Output {
  line(text?: string): void;
  json(value: unknown): void;
  /** Notes for a human, on stderr, so that stdout stays parseable. */
  note(text: string): void;
  readStdin(): Promise<string>;
}

export interface CommandContext {
  args: string[];
  options: OptionValues;
  clients: AdminClients;
  out: Output;
}

export interface Command {
  /** The words that select it: `user create`. */
  name: string;
  /**
   * Whether it changes something, and so leaves an admin audit record (docs/audit-log.md), refused
   * or not; listings and probes (`webhook test`, `upstream test`) do not. Said by each command.
   */
  changes: boolean;
  /** Positional arguments, all required: `<name>`. */
  args: string[];
  /** Further options it accepts, beyond the target options. */
  options: CommandOption[];
  /** How the options read in its usage line: `[--password P | --password-stdin] [--group G]...`. */
  optionsUsage?: string;
  summary: string;
  details?: string;
  run(context: CommandContext): Promise<void>;
}

/** Left-aligned columns, for lists meant to be read. */
export function formatTable(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => row[column]?.length ?? 0)));
  const format = (cells: string[]) =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column])))
      .join('  ')
      .trimEnd();
  return [format(headers), ...rows.map(format)];
}
