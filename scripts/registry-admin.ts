/**
 * The registry's admin CLI: team logins and groups (Cognito), who may do what (the access
 * policy), and robot accounts for CI. Run `registry-admin --help`.
 *
 * Exit codes: 0 done, 1 refused or failed (the reason on stderr), 2 wrong command line.
 */
import './local/quiet-sdk-warning.js';
import { parseArgs } from 'node:util';
import { text } from 'node:stream/consumers';
import { accessCommands } from './admin/access-commands.js';
import { auditCommands, recordAdminChange } from './admin/audit-commands.js';
import { AdminClients } from './admin/clients.js';
import { ALL_OPTIONS, TARGET_OPTIONS, type Command, type OptionValues, type Output } from './admin/command.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, describeError } from './admin/errors.js';
import { robotCommands } from './admin/robot-commands.js';
import { tokenCommands } from './admin/token-commands.js';
import { webhookCommands } from './admin/webhook-commands.js';
import { upstreamCommands } from './admin/upstream-commands.js';
import { resolveTarget } from './admin/targets.js';
import { trustCommands } from './admin/trust-commands.js';
import { groupCommands, userCommands } from './admin/user-commands.js';

const PROGRAM = 'registry-admin';
const COMMANDS: Command[] = [
  ...userCommands,
  ...groupCommands,
  ...accessCommands,
  ...robotCommands,
  ...tokenCommands,
  ...trustCommands,
  ...webhookCommands,
  ...upstreamCommands,
  ...auditCommands,
];

const TARGET_HELP = `Which registry (one of):
  --local [--data-dir DIR]          the registry npm start runs (data dir: --data-dir, else
                                    REGISTRY_DATA_DIR, else .registry-data)
  --stack NAME [--region R]         a deployed stack, through its outputs UserPoolId and TableName
  --user-pool-id ID --table-name T [--region R]
                                    the same, given by hand (either one is enough for some commands)
  --registry HOST                   the registry's host for login hints, when the target does not know it`;

const processOutput: Output = {
  line: (line = '') => process.stdout.write(`${line}\n`),
  json: (value) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`),
  note: (note) => process.stderr.write(`${note}\n`),
  readStdin: () => text(process.stdin),
};

async function main(argv: string[], out: Output = processOutput): Promise<number> {
  try {
    const { values, positionals } = parseCommandLine(argv);
    const command = findCommand(positionals);
    if (values.help) {
      printHelp(out, command, positionals);
      return EXIT_OK;
    }
    if (!command) {
      if (positionals.length > 0) throw new UsageError(`unknown command "${positionals.join(' ')}"`);
      printHelp(out, undefined, []);
      return EXIT_USAGE;
    }
    const args = positionals.slice(command.name.split(' ').length);
    checkCommandLine(command, args, values);
    const clients = new AdminClients(await resolveTarget(values));
    try {
      await command.run({ args, options: values, clients, out });
      if (command.changes && clients.hasTable()) await recordAdminChange(clients.auditLog(), command.name, args);
    } catch (error) {
      if (command.changes && clients.hasTable()) await recordAdminChange(clients.auditLog(), command.name, args, error);
      throw error;
    } finally {
      clients.destroy();
    }
    return EXIT_OK;
  } catch (error) {
    out.note(`${PROGRAM}: ${describeError(error)}`);
    if (error instanceof UsageError) {
      out.note(`Run ${PROGRAM} --help for usage.`);
      return EXIT_USAGE;
    }
    return EXIT_FAILED;
  }
}

function parseCommandLine(argv: string[]): { values: OptionValues; positionals: string[] } {
  try {
    return parseArgs({ args: argv, options: ALL_OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    // parseArgs explains unknown options and missing values well; only the type is wrong.
    throw new UsageError((error as Error).message);
  }
}

/** The command whose words the positionals start with. */
function findCommand(positionals: string[]): Command | undefined {
  return COMMANDS.find((command) => {
    const words = command.name.split(' ');
    return words.every((word, index) => positionals[index] === word);
  });
}

function checkCommandLine(command: Command, args: string[], values: OptionValues): void {
  const accepted = new Set<string>(['help', ...Object.keys(TARGET_OPTIONS), ...command.options]);
  const refused = Object.keys(values).filter((option) => !accepted.has(option));
  if (refused.length > 0) throw new UsageError(`${command.name} does not take --${refused.join(', --')}`);
  if (args.length !== command.args.length) {
    throw new UsageError(`usage: ${PROGRAM} ${usageLine(command)}`);
  }
}

function usageLine(command: Command): string {
  return [command.name, ...command.args, command.optionsUsage].filter(Boolean).join(' ');
}

function printHelp(out: Output, command: Command | undefined, positionals: string[]): void {
  if (command) {
    out.line(`Usage: ${PROGRAM} ${usageLine(command)} <target>`);
    out.line();
    out.line(`${command.summary[0].toUpperCase()}${command.summary.slice(1)}.`);
    if (command.details) out.line(command.details);
    out.line();
    out.line(TARGET_HELP);
    return;
  }
  // `user --help` lists the user commands only.
  const topic = positionals[0];
  const shown = COMMANDS.filter((candidate) => !topic || candidate.name.split(' ')[0] === topic);
  out.line(`Usage: ${PROGRAM} <command> [arguments] <target>`);
  out.line();
  out.line('Commands:');
  for (const candidate of shown.length > 0 ? shown : COMMANDS) {
    out.line(`  ${usageLine(candidate)}`);
    out.line(`      ${candidate.summary}`);
  }
  out.line();
  out.line(TARGET_HELP);
  out.line();
  out.line(`${PROGRAM} <command> --help shows one command in full. Commands that list take --json.`);
  out.line();
  out.line(EXAMPLES);
}

const EXAMPLES = `Examples:
  npm run admin -- --local user create alice --group team-a      # prints alice's password once
  npm run admin -- --local grant team-a 'team-a/*' pull,push
  npm run admin -- --stack oci-registry robot create ci --grant 'builds/*:pull,push' --expires 90
  npm run admin -- --local access list --json | jq .

Exit codes: 0 done, 1 refused or failed (the reason on stderr, one line), 2 wrong command line.`;

process.exitCode = await main(process.argv.slice(2));
