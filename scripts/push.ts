/**
 * npm run push -- <oci-layout-dir[:tag]|docker-save.tar> <registry>/<name>:<tag>
 *   [--username U --password-stdin] [--insecure-http | --tls] [--concurrency 4] [--part-size MiB]
 *   [--mount-from <repository>]... [--quiet] [--json]
 *
 * Pushes an image with its large layers straight to S3 (docs/direct-push.md). Progress goes to
 * stderr; the pushed manifest digest (or, with --json, a summary) to stdout.
 */
import { parseArgs } from 'node:util';
import { push, type PushOptions } from './push/push.js';

const USAGE = `usage: npm run push -- <oci-layout-dir[:tag]|docker-save.tar[:repo:tag]> <registry>/<name>[:<tag>]
  --username <user>        log in as this user (the password comes from stdin)
  --password-stdin         read the password from stdin
  --insecure-http          talk plain HTTP to the registry (the default for localhost, 127.x and [::1])
  --tls                    talk HTTPS even to a loopback address
  --concurrency <n>        parts and small blobs in flight at once (default 4)
  --part-size <MiB>        size of direct-upload parts, at least 5 (default 32)
  --mount-from <repo>      try to mount blobs from this repository of the same registry (repeatable)
  --quiet                  no progress
  --json                   print a JSON summary on stdout

Examples:
  npm run push -- ./my-image:latest 127.0.0.1:5000/team/app:1.0        # an OCI layout, to npm start
  docker save app:1.0 -o app.tar && npm run push -- app.tar registry.example.com/team/app:1.0 \\
      --username ci --password-stdin < secret.txt
  npm run push -- ./my-image registry.example.com/team/app:1.0 --json | jq -r .digest

Progress goes to stderr; stdout gets the manifest digest (or the --json summary).
Exit codes: 0 pushed, 1 the push failed (the reason on stderr, in one line), 2 wrong command line.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(argv);
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 2) throw new UsageError(`expected a source and a destination, got ${positionals.length} argument(s)`);
  if (values.tls && values['insecure-http']) throw new UsageError('--tls and --insecure-http contradict each other');
  const [source, destination] = positionals as [string, string];
  let credentials: PushOptions['credentials'];
  if (values['password-stdin']) {
    if (!values.username) throw new UsageError('--password-stdin needs --username');
    const password = (await readStdin()).replace(/\r?\n$/, '');
    if (!password) throw new UsageError('no password on stdin');
    credentials = { username: values.username, password };
  } else if (values.username) {
    throw new UsageError('give the password on stdin with --password-stdin');
  }
  const result = await push({
    source,
    destination,
    credentials,
    insecureHttp: values.tls ? false : values['insecure-http'],
    concurrency: positiveInteger(values.concurrency, '--concurrency', 4),
    partSizeMiB: positiveInteger(values['part-size'], '--part-size', 32),
    mountFrom: values['mount-from'] ?? [],
    quiet: values.quiet ?? false,
  });
  process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : `${result.digest}\n`);
  return 0;
}

const OPTIONS = {
  username: { type: 'string', short: 'u' },
  'password-stdin': { type: 'boolean' },
  'insecure-http': { type: 'boolean' },
  tls: { type: 'boolean' },
  concurrency: { type: 'string' },
  'part-size': { type: 'string' },
  'mount-from': { type: 'string', multiple: true },
  quiet: { type: 'boolean', short: 'q' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parseCommandLine(argv: string[]) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
  } catch (error) {
    // parseArgs explains unknown options and missing values well.
    throw new UsageError((error as Error).message);
  }
}

class UsageError extends Error {}

function positiveInteger(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new UsageError(`${flag} must be a positive whole number`);
  if (flag === '--part-size' && number < 5) throw new UsageError('--part-size must be at least 5 (MiB), S3 smallest part');
  return number;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`push: ${error instanceof Error ? error.message : String(error)}\n`);
    if (error instanceof UsageError) process.stderr.write('Run npm run push -- --help for usage.\n');
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
