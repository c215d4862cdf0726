/**
 * How the admin CLI fails: a usage error (exit 2) prints what was wrong and how to ask for help,
 * a refused operation (exit 1) one line of explanation. Neither shows a stack trace, and neither
 * may carry a secret.
 */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** The command line itself is wrong. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The command was understood but could not be done (not found, exists already, unreachable). */
export class AdminError extends Error {
  override name = 'AdminError';
}

/** AWS error names the CLI explains in its own words; anything else is shown as `<name>: <message>`. */
const AWS_ERROR_HINTS: Record<string, string> = {
  CredentialsProviderError: 'no AWS credentials found (set AWS_PROFILE or the AWS_* variables)',
  ExpiredTokenException: 'the AWS credentials have expired',
  UnrecognizedClientException: 'the AWS credentials are not valid here',
  AccessDeniedException: 'the AWS credentials are not allowed to do this',
};

/** One line describing any error, for the CLI's stderr. */
export function describeError(error: unknown): string {
  if (error instanceof UsageError || error instanceof AdminError) return error.message;
  const refused = connectionRefused(error);
  if (refused) return `cannot reach ${refused}: is the registry (npm start) still running?`;
  if (error instanceof Error) {
    const hint = AWS_ERROR_HINTS[error.name];
    if (hint) return `${hint} (${error.name}: ${error.message})`;
    return error.name && error.name !== 'Error' ? `${error.name}: ${error.message}` : error.message;
  }
  return String(error);
}

/** The address of a refused connection anywhere in the cause chain (the SDK wraps it). */
function connectionRefused(error: unknown): string | undefined {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    const { code, address, port, cause, errors } = current as NodeJS.ErrnoException & {
      address?: string;
      port?: number;
      cause?: unknown;
      errors?: unknown[];
    };
    if (code === 'ECONNREFUSED') return address ? `${address}:${port}` : 'the local endpoint';
    current = cause ?? errors?.[0];
  }
  return undefined;
}

/** True for an AWS SDK error of that name. */
export function isAwsError(error: unknown, name: string): boolean {
  return error instanceof Error && error.name === name;
}
