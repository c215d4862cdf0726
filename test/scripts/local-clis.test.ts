/**
 * The `--local` CLIs (`npm run admin`, `policy`, `gc`) as a user meets them, by spawning the
 * scripts against a registry started on a custom data dir: they find it through the same
 * REGISTRY_DATA_DIR `npm start` honours, say where they looked when nothing runs there, and
 * keep the CLI conventions (help with examples and exit codes, --json, one-line errors).
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useLocalStack } from '../integration/local-stack.js';

const SCRIPTS = join(import.meta.dirname, '../../scripts');
/** By URL: the CLIs run from another working directory, where `--import tsx` would not resolve. */
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const CLIS = { admin: 'registry-admin.ts', policy: 'registry-policy.ts', gc: 'gc.ts' } as const;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a CLI from `cwd` with the given environment on top of a clean one (no REGISTRY_DATA_DIR from outside). */
function run(cli: keyof typeof CLIS, args: string[], options: { cwd: string; dataDir?: string }): Promise<Run> {
  const { REGISTRY_DATA_DIR: _ignored, ...environment } = process.env;
  const env = { ...environment, ...(options.dataDir ? { REGISTRY_DATA_DIR: options.dataDir } : {}) };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', TSX, join(SCRIPTS, CLIS[cli]), ...args],
      { encoding: 'utf8', cwd: options.cwd, env, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

let elsewhere: string;
beforeAll(async () => {
  elsewhere = await mkdtemp(join(tmpdir(), 'local-clis-cwd-'));
});
afterAll(async () => {
  await rm(elsewhere, { recursive: true, force: true });
});

describe('the --local CLIs on a registry with a custom data dir', () => {
  const stack = useLocalStack('local-clis');

  it('admin, policy and gc find it through REGISTRY_DATA_DIR, with no warning to ignore', async () => {
    const dataDir = stack.dataDir;
    const admin = await run('admin', ['--local', 'access', 'list', '--json'], { cwd: elsewhere, dataDir });
    expect(admin.stderr).toBe('');
    expect(admin.code).toBe(0);
    expect(JSON.parse(admin.stdout)).toBeTypeOf('object');

    const policy = await run('policy', ['--local', 'immutable', 'list', '--json'], { cwd: elsewhere, dataDir });
    expect(policy.stderr).toBe('');
    expect(policy.code).toBe(0);
    expect(JSON.parse(policy.stdout)).toEqual([]);

    const gc = await run('gc', ['--dry-run'], { cwd: elsewhere, dataDir });
    expect(gc.code).toBe(0);
    expect(gc.stderr).not.toMatch(/Warning|\{"time"/);
  });

  it('--data-dir names it too, and wins over REGISTRY_DATA_DIR', async () => {
    const result = await run('admin', ['--local', '--data-dir', stack.dataDir, 'access', 'list', '--json'], {
      cwd: elsewhere,
      dataDir: join(elsewhere, 'nothing-here'),
    });
    expect(result.code).toBe(0);
  });

  it('gc prints a short human summary by default, the report with --json', async () => {
    await stack.http.pushImage('gc-cli/app', 'v1', 'gc-cli');
    const human = await run('gc', ['--dry-run', '--grace', '0'], { cwd: elsewhere, dataDir: stack.dataDir });
    expect(human.code).toBe(0);
    const lines = human.stdout.trim().split('\n');
    expect(lines.length).toBeLessThanOrEqual(5);
    expect(lines[0]).toMatch(/^Would free .* on the local registry in .* in \d+\.\d s \(dry run: nothing was deleted\):$/);
    expect(human.stdout).toMatch(/Kept \d+ blobs?: \d+ referenced by a manifest, \d+ unreferenced but used within the grace period \(0 s/);
    expect(human.stdout).not.toMatch(/[{}]/);
    // Progress: one line per phase on stderr, no JSON.
    expect(human.stderr).toMatch(/^gc: marking/m);
    expect(human.stderr).toMatch(/^gc: marked \d+ items/m);
    expect(human.stderr).not.toMatch(/\{"time"/);

    const json = await run('gc', ['--dry-run', '--json'], { cwd: elsewhere, dataDir: stack.dataDir });
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as { dryRun: boolean; blobsLive: number };
    expect(report.dryRun).toBe(true);
    expect(report.blobsLive).toBeGreaterThan(0);
  });
});

describe('npm run policy retention apply on the local registry', () => {
  const stack = useLocalStack('local-clis-policy');

  it('shows progress on stderr, a line per tag it deletes, and the report on stdout', async () => {
    await stack.http.pushImage('pol-cli/app', 't1', 'pol-cli-1');
    await stack.http.pushImage('pol-cli/app', 't2', 'pol-cli-2');
    const options = { cwd: elsewhere, dataDir: stack.dataDir };
    expect((await run('policy', ['--local', 'retention', 'set', 'pol-cli/*', '--keep-last', '1'], options)).code).toBe(0);
    const apply = await run('policy', ['--local', 'retention', 'apply'], options);
    expect(apply.code).toBe(0);
    expect(apply.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^policy: deleted pol-cli\/app:t1 \(/)]);
    expect(apply.stdout).toMatch(/deleted 1 tag/i);
  });
});

describe('when no registry runs there', () => {
  it.each(['admin', 'policy', 'gc'] as const)('%s says in one line which directory it looked in and why, exit 1', async (cli) => {
    const dataDir = join(elsewhere, 'not-started');
    const args = cli === 'gc' ? ['--dry-run'] : ['--local', cli === 'admin' ? 'access' : 'immutable', 'list'];
    const fromEnvironment = await run(cli, args, { cwd: elsewhere, dataDir });
    expect(fromEnvironment.code).toBe(1);
    expect(fromEnvironment.stderr.trim().split('\n')).toHaveLength(1);
    expect(fromEnvironment.stderr).toContain(`no running local registry found in ${dataDir} (REGISTRY_DATA_DIR)`);
    expect(fromEnvironment.stderr).toMatch(/start one with npm start/);

    const byDefault = await run(cli, args, { cwd: elsewhere });
    expect(byDefault.stderr).toContain(`in ${join(elsewhere, '.registry-data')} (the default; --data-dir or REGISTRY_DATA_DIR name another)`);
  });
});

describe('CLI conventions', () => {
  it.each(['admin', 'policy', 'gc'] as const)('%s --help shows examples and exit codes on stdout, exit 0', async (cli) => {
    const help = await run(cli, ['--help'], { cwd: elsewhere });
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Examples:\n {2}npm run /);
    expect(help.stdout).toMatch(/Exit codes: 0 done, 1 .*, 2 wrong command line/);
  });

  it.each(['admin', 'policy', 'gc'] as const)('%s answers a wrong command line with exit 2, a reason and where help is', async (cli) => {
    const wrong = await run(cli, ['--no-such-option'], { cwd: elsewhere });
    expect(wrong.code).toBe(2);
    const lines = wrong.stderr.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/no-such-option/);
    expect(lines[1]).toMatch(/--help/);
  });
});
