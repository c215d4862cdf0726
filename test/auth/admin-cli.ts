/** Runs the admin CLI as an admin would, against the local registry whose data dir is given. */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';

const CLI = resolve('scripts/registry-admin.ts');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runAdminCli(dataDir: string, args: string[]): Promise<CliResult> {
  return new Promise((resolveRun) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args, '--local', '--data-dir', dataDir], { encoding: 'utf8' }, (error, stdout, stderr) =>
      resolveRun({ code: error ? Number(error.code) : 0, stdout, stderr }),
    );
  });
}

/** Runs the CLI and fails with its stderr unless it succeeds; answers its stdout. */
export async function adminCli(dataDir: string, args: string[]): Promise<string> {
  const result = await runAdminCli(dataDir, args);
  if (result.code !== 0) throw new Error(`registry-admin ${args.join(' ')} exited with ${result.code}: ${result.stderr}`);
  return result.stdout;
}
