import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const DOCTOR = join(import.meta.dirname, '..', '..', 'scripts', 'doctor.ts');
const TSX = join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'tsx');

/** `npm run doctor -- <args>` as a user runs it: its exit code and its lines of output. */
export async function doctor(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; lines: string[] }> {
  const { stdout, code } = await promisify(execFile)(TSX, [DOCTOR, ...args], { encoding: 'utf8', timeout: 120_000, env }).then(
    (result) => ({ stdout: result.stdout, code: 0 }),
    (error: { stdout?: string; code?: number }) => ({ stdout: error.stdout ?? '', code: error.code ?? -1 }),
  );
  return { code, lines: stdout.trim().split('\n') };
}
