import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { FUNCTION_BUNDLING } from '../../../lib/function-bundling.js';
import { stopChildProcess } from '../child-processes.js';

/**
 * Lambda as it runs a function, locally: each execution environment is a child process that
 * imports the bundle once (the cold start) and then handles one invocation at a time. An
 * invocation goes to an idle environment; when none is idle a new one starts, up to
 * `maxInstances` (Lambda's concurrency), and beyond that it waits for one to free up.
 *
 * The environment is what Lambda gives a function: the variables the CDK writes (environmentOf),
 * the region and credentials Lambda sets from the function's role, and NODE_OPTIONS as bundled.
 * An environment whose invocation fails with an exception is kept, as Lambda keeps it; one that
 * exits is replaced by the next cold start.
 */
export interface LambdaFunctionOptions {
  name: string;
  /** The bundled handler file (index.mjs). */
  bundle: string;
  /** The function's environment variables, as the CDK writes them. */
  environment: Record<string, string>;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Execution environments at most (default 3: the machines running this have two cores). */
  maxInstances?: number;
  memorySizeMb?: number;
  /** Where the function's console goes, line by line (default: nowhere). */
  onLog?: (line: string) => void;
}

export interface LambdaFunction {
  readonly name: string;
  /** The function's ARN, as its invocation context names it (EventBridge Scheduler targets name it). */
  readonly arn: string;
  invoke<Result = unknown>(event: unknown): Promise<Result>;
  /** How many execution environments have started (cold starts) so far. */
  coldStarts(): number;
  stop(): Promise<void>;
}

type RuntimeMessage =
  | { type: 'ready' }
  | { type: 'init-error'; error: string }
  | { type: 'result'; id: string; result: unknown }
  | { type: 'error'; id: string; error: string };

interface Instance {
  child: ChildProcess;
  ready: Promise<void>;
  stop(): Promise<void>;
  exited: boolean;
}

const RUNTIME = fileURLToPath(new URL('./lambda-runtime.mjs', import.meta.url));

export function startLambdaFunction(options: LambdaFunctionOptions): LambdaFunction {
  const maxInstances = options.maxInstances ?? 3;
  const idle: Instance[] = [];
  const all = new Set<Instance>();
  const waiting: ((instance: Instance) => void)[] = [];
  let starts = 0;
  let stopped = false;

  const arn = `arn:aws:lambda:${options.region}:123456789012:function:${options.name}`;
  const environment: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    TZ: ':UTC',
    LANG: 'en_US.UTF-8',
    ...options.environment,
    NODE_OPTIONS: FUNCTION_BUNDLING.nodeOptions,
    AWS_REGION: options.region,
    AWS_DEFAULT_REGION: options.region,
    AWS_ACCESS_KEY_ID: options.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: options.credentials.secretAccessKey,
    AWS_LAMBDA_FUNCTION_NAME: options.name,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(options.memorySizeMb ?? 1024),
    AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
  };

  function startInstance(): Instance {
    starts++;
    const child = fork(RUNTIME, [options.bundle, options.name, arn], {
      env: environment,
      // Plain Node: not the launcher's TypeScript loader or test runner flags.
      execArgv: [],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream?.on('data', (chunk: Buffer) => {
        const lines = (partial + chunk.toString()).split('\n');
        partial = lines.pop()!;
        for (const line of lines) options.onLog?.(line);
      });
    }
    const instance: Instance = {
      child,
      exited: false,
      stop: stopChildProcess(child, 2_000),
      ready: new Promise<void>((resolve, reject) => {
        const onMessage = (message: RuntimeMessage) => {
          if (message.type === 'ready') resolve();
          if (message.type === 'init-error') reject(new Error(`${options.name}: initialisation failed: ${message.error}`));
          if (message.type === 'ready' || message.type === 'init-error') child.off('message', onMessage);
        };
        child.on('message', onMessage);
        child.once('exit', (code, signal) =>
          reject(new Error(`${options.name}: the runtime exited (${signal ?? `code ${code}`}) during initialisation`)),
        );
      }),
    };
    child.once('exit', () => {
      instance.exited = true;
      all.delete(instance);
      const index = idle.indexOf(instance);
      if (index >= 0) idle.splice(index, 1);
    });
    instance.ready.catch(() => undefined);
    all.add(instance);
    return instance;
  }

  async function acquire(): Promise<Instance> {
    if (stopped) throw new Error(`${options.name} is stopped`);
    const free = idle.pop();
    if (free) return free;
    if (all.size < maxInstances) {
      const instance = startInstance();
      try {
        await instance.ready;
      } catch (error) {
        await instance.stop();
        throw error;
      }
      return instance;
    }
    return new Promise((resolve) => waiting.push(resolve));
  }

  function release(instance: Instance): void {
    if (instance.exited || stopped) return;
    const next = waiting.shift();
    if (next) next(instance);
    else idle.push(instance);
  }

  return {
    name: options.name,
    arn,
    coldStarts: () => starts,
    async invoke<Result>(event: unknown): Promise<Result> {
      const instance = await acquire();
      const id = randomUUID();
      try {
        const answer = new Promise<Result>((resolve, reject) => {
          const onMessage = (message: RuntimeMessage) => {
            if ((message.type !== 'result' && message.type !== 'error') || message.id !== id) return;
            cleanUp();
            if (message.type === 'result') resolve(message.result as Result);
            else reject(new Error(`${options.name}: ${message.error}`));
          };
          const onExit = () => {
            cleanUp();
            reject(new Error(`${options.name}: the runtime exited during the invocation`));
          };
          const cleanUp = () => {
            instance.child.off('message', onMessage);
            instance.child.off('exit', onExit);
          };
          instance.child.on('message', onMessage);
          instance.child.once('exit', onExit);
        });
        instance.child.send({ id, event });
        return await answer;
      } finally {
        release(instance);
      }
    },
    async stop() {
      stopped = true;
      await Promise.all([...all].map((instance) => instance.stop()));
    },
  };
}
