/** Runs the admin CLI as an admin would, against the local registry whose data dir is given. */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';

const CLI = resolve('scripts/registry-admin.ts');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `input` is what the CLI reads on stdin (`--password-stdin`); without it stdin is empty. */
export function runAdminCli(dataDir: string, args: string[], input = ''): Promise<CliResult> {
  return new Promise((resolveRun) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', CLI, ...args, '--local', '--data-dir', dataDir],
      { encoding: 'utf8' },
      (error, stdout, stderr) => resolveRun({ code: error ? Number(error.code) : 0, stdout, stderr }),
    );
    child.stdin?.end(input);
  });
}

/** Runs the CLI and fails with its stderr unless it succeeds; answers its stdout. */
export async function adminCli(dataDir: string, args: string[], input?: string): Promise<string> {
  const result = await runAdminCli(dataDir, args, input);
  if (result.code !== 0) throw new Error(`registry-admin ${args.join(' ')} exited with ${result.code}: ${result.stderr}`);
  return result.stdout;
}
