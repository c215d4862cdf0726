/**
 * Thin wrappers that run the real OCI clients (skopeo, podman) as child
 * processes against a plain-HTTP registry, isolated from the machine's own
 * container storage, caches and credentials.
 */
import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Pushing a 300 MB layer with --debug prints a lot; never truncate it. */
const MAX_OUTPUT_BYTES = 256 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 5 * 60 * 1000;
/** How much of a failing command's stderr goes into the error message. */
const STDERR_TAIL_CHARS = 8000;

export interface ToolResult {
  stdout: string;
  stderr: string;
}

export class ToolError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | string | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`${command}\nexited with ${exitCode}\n--- stderr (tail) ---\n${stderr.slice(-STDERR_TAIL_CHARS)}`);
    this.name = 'ToolError';
  }
}

/** The ToolError of a client command that was meant to fail (a success fails the test). */
export async function toolFailure(command: Promise<unknown>): Promise<ToolError> {
  const error = await command.then(
    () => undefined,
    (failed: unknown) => failed,
  );
  if (!(error instanceof ToolError)) throw error instanceof Error ? error : new Error('the command succeeded');
  return error;
}

export interface RunOptions {
  env?: Record<string, string>;
  timeoutMs?: number;
  /** How to show the command in errors, when the real command line is a wrapper around it. */
  displayAs?: string;
}

/** Runs a program without a shell; rejects with a ToolError carrying the full stdout and stderr. */
export async function runTool(program: string, args: string[], options: RunOptions = {}): Promise<ToolResult> {
  try {
    const { stdout, stderr } = await execFileAsync(program, args, {
      env: { ...environmentWithoutProxies(), ...options.env },
      maxBuffer: MAX_OUTPUT_BYTES,
      timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      encoding: 'utf8',
    });
    return { stdout, stderr };
  } catch (error) {
    const failure = error as NodeJS.ErrnoException & { stdout?: string; stderr?: string; signal?: string };
    const exitCode = failure.code ?? failure.signal ?? null;
    const command = options.displayAs ?? [program, ...args].join(' ');
    throw new ToolError(command, exitCode, failure.stdout ?? '', failure.stderr ?? failure.message);
  }
}

/** The registry is on loopback: a proxy from the environment must not intercept it. */
function environmentWithoutProxies(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (/^(https?|all|no)_proxy$/i.test(name)) delete env[name];
  }
  return env;
}

/**
 * What every client invocation shares: its own policy and (empty) credentials,
 * and its own copy of the state containers/image keeps outside any directory a
 * flag can move.
 *
 * As root, containers/image keeps its blob-info cache (which blob it saw in
 * which repository, used to choose cross-repository mounts) in
 * /var/lib/containers/cache, and podman 4.3 keeps its lock segment in
 * /dev/shm/libpod_lock, whatever --root says. So as root the client runs in a
 * private mount namespace where /var/lib is a directory of ours and /dev/shm a
 * fresh tmpfs. Otherwise XDG_DATA_HOME moves the cache.
 */
interface IsolatedClient {
  policy: string;
  run(program: string, args: string[]): Promise<ToolResult>;
}

async function isolateClient(workDir: string): Promise<IsolatedClient> {
  const configDir = join(workDir, 'config');
  await mkdir(configDir, { recursive: true });
  const policy = join(configDir, 'policy.json');
  await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  // An empty auth file means "no credentials" (podman refuses a path that does not exist).
  const authFile = join(configDir, 'auth.json');
  await writeFile(authFile, JSON.stringify({ auths: {} }));
  const privateVarLib = join(workDir, 'var-lib');
  await mkdir(join(privateVarLib, 'containers', 'cache'), { recursive: true });
  const env = { REGISTRY_AUTH_FILE: authFile, XDG_DATA_HOME: join(workDir, 'xdg-data') };

  return {
    policy,
    run: (program, args) => {
      const options = { env, displayAs: [program, ...args].join(' ') };
      if (process.getuid?.() !== 0) return runTool(program, args, options);
      const namespace = ['--mount', '--propagation', 'private', '--', 'sh', '-c', PRIVATE_STATE_AND_EXEC, 'sh', privateVarLib];
      return runTool('unshare', [...namespace, program, ...args], options);
    },
  };
}

/** Shell run inside the new mount namespace: `$1` replaces /var/lib, /dev/shm starts empty, then the rest runs. */
const PRIVATE_STATE_AND_EXEC = 'mount --bind "$1" /var/lib && mount -t tmpfs tmpfs /dev/shm && shift && exec "$@"';

// ---------------------------------------------------------------------------
// skopeo
// ---------------------------------------------------------------------------

export interface Skopeo {
  /** `skopeo copy` with TLS verification off on both sides. */
  copy(source: string, destination: string, extraArgs?: string[]): Promise<ToolResult>;
  /** `skopeo inspect`; pass `['--raw']` for the exact manifest bytes. */
  inspect(reference: string, extraArgs?: string[]): Promise<ToolResult>;
  /** The tags `skopeo list-tags` reports, in the order it reports them. */
  listTags(repository: string): Promise<string[]>;
  delete(reference: string): Promise<ToolResult>;
  /** Any other skopeo command; global flags are added. */
  run(args: string[]): Promise<ToolResult>;
}

/** A skopeo with its own policy, no credentials and its own blob-info cache under `workDir`. */
export async function createSkopeo(workDir: string): Promise<Skopeo> {
  const client = await isolateClient(workDir);
  const run = (args: string[]) => client.run('skopeo', ['--policy', client.policy, ...args]);

  return {
    run,
    copy: (source, destination, extraArgs = []) =>
      run(['copy', '--src-tls-verify=false', '--dest-tls-verify=false', ...extraArgs, source, destination]),
    inspect: (reference, extraArgs = []) => run(['inspect', '--tls-verify=false', ...extraArgs, reference]),
    listTags: async (repository) => {
      const { stdout } = await run(['list-tags', '--tls-verify=false', repository]);
      return (JSON.parse(stdout) as { Tags: string[] }).Tags;
    },
    delete: (reference) => run(['delete', '--tls-verify=false', reference]),
  };
}

// ---------------------------------------------------------------------------
// podman
// ---------------------------------------------------------------------------

export interface Podman {
  /** Runs `podman <args>` against the private store. */
  run(args: string[]): Promise<ToolResult>;
  pull(reference: string, extraArgs?: string[]): Promise<ToolResult>;
  push(source: string, destination?: string, extraArgs?: string[]): Promise<ToolResult>;
  /** Parsed `podman image inspect` of one image. */
  inspectImage(reference: string): Promise<PodmanImageInspect>;
  /** Removes the private store. */
  destroy(): Promise<void>;
}

export interface PodmanImageInspect {
  Id: string;
  Digest: string;
  RepoTags: string[];
  RepoDigests: string[];
  Architecture: string;
  Os: string;
  RootFS: { Type: string; Layers: string[] };
  Labels: Record<string, string> | null;
}

const PODMAN_MAX_RUNROOT_LENGTH = 50;

/**
 * A podman whose storage, run state, temp files, blob-info cache and locks all
 * live under `workDir` (or in a private tmpfs), with the vfs driver (no overlay
 * mounts needed, works as root in a container).
 */
export async function createPodman(workDir: string): Promise<Podman> {
  const runRoot = join(workDir, 'run');
  if (runRoot.length > PODMAN_MAX_RUNROOT_LENGTH) {
    throw new Error(`podman refuses a run root longer than ${PODMAN_MAX_RUNROOT_LENGTH} characters: ${runRoot}`);
  }
  const client = await isolateClient(workDir);
  const policy = client.policy;
  const globalArgs = [
    '--root',
    join(workDir, 'root'),
    '--runroot',
    runRoot,
    '--tmpdir',
    join(workDir, 'tmp'),
    '--storage-driver',
    'vfs',
    '--events-backend',
    'none',
    '--cgroup-manager',
    'cgroupfs',
  ];
  const run = (args: string[]) => client.run('podman', [...globalArgs, ...args]);

  return {
    run,
    pull: (reference, extraArgs = []) => run(['pull', '--tls-verify=false', '--signature-policy', policy, ...extraArgs, reference]),
    push: (source, destination, extraArgs = []) =>
      run(['push', '--tls-verify=false', '--signature-policy', policy, ...extraArgs, source, ...(destination ? [destination] : [])]),
    inspectImage: async (reference) => {
      const { stdout } = await run(['image', 'inspect', reference]);
      const [image] = JSON.parse(stdout) as PodmanImageInspect[];
      if (!image) throw new Error(`podman image inspect ${reference} returned no image`);
      return image;
    },
    // vfs layers are plain directories, so removing the tree removes the store.
    destroy: () => rm(workDir, { recursive: true, force: true }),
  };
}
