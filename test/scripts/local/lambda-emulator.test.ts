import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLambdaFunction, type LambdaFunction } from '../../../scripts/local/deployed-shape/lambda-emulator.js';

/** The deployed shape's Lambda emulator runs a handler as Lambda does. */
const HANDLER = `
const initialisedAt = Date.now();
let inFlight = 0;
let invocations = 0;
export async function handler(event, context) {
  inFlight++;
  invocations++;
  const overlapping = inFlight;
  try {
    if (event.fail) throw new Error('handler failed on purpose');
    await new Promise((resolve) => setTimeout(resolve, event.sleepMs ?? 0));
    return { pid: process.pid, initialisedAt, overlapping, invocations, requestId: context.awsRequestId, table: process.env.TABLE_NAME, options: process.env.NODE_OPTIONS };
  } finally {
    inFlight--;
  }
}
`;

interface Answer {
  pid: number;
  initialisedAt: number;
  overlapping: number;
  invocations: number;
  requestId: string;
  table: string;
  options: string;
}

describe('the Lambda emulator of the deployed shape', () => {
  let dir: string;
  let fn: LambdaFunction;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lambda-emulator-'));
    await writeFile(join(dir, 'index.mjs'), HANDLER);
    await writeFile(join(dir, 'broken.mjs'), "throw new Error('no configuration');\nexport const handler = () => 1;\n");
    fn = startLambdaFunction({
      name: 'fixture',
      bundle: join(dir, 'index.mjs'),
      environment: { TABLE_NAME: 'registry' },
      region: 'us-east-1',
      credentials: { accessKeyId: 'id', secretAccessKey: 'secret' },
      maxInstances: 2,
    });
  });

  afterAll(async () => {
    await fn?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('initialises each environment once, reuses it warm, and gives it the function’s environment', async () => {
    const first = await fn.invoke<Answer>({});
    const second = await fn.invoke<Answer>({});
    expect(second.pid).toBe(first.pid);
    expect(second.initialisedAt).toBe(first.initialisedAt);
    expect(second.requestId).not.toBe(first.requestId);
    expect(first).toMatchObject({ table: 'registry', options: '--enable-source-maps' });
    expect(fn.coldStarts()).toBe(1);
  });

  it('runs one invocation at a time per environment, starts more when busy, up to the limit, and queues beyond it', async () => {
    const answers = await Promise.all(Array.from({ length: 6 }, () => fn.invoke<Answer>({ sleepMs: 150 })));
    expect(answers.every((answer) => answer.overlapping === 1)).toBe(true);
    expect(new Set(answers.map((answer) => answer.pid)).size).toBe(2);
    expect(fn.coldStarts()).toBe(2);
  });

  it('keeps the environment after the handler throws, and reports the error to the caller', async () => {
    const before = fn.coldStarts();
    await expect(fn.invoke({ fail: true })).rejects.toThrow(/handler failed on purpose/);
    expect((await fn.invoke<Answer>({})).invocations).toBeGreaterThan(1);
    expect(fn.coldStarts()).toBe(before);
  });

  it('fails invocations of a function whose initialisation throws', async () => {
    const broken = startLambdaFunction({
      name: 'broken',
      bundle: join(dir, 'broken.mjs'),
      environment: {},
      region: 'us-east-1',
      credentials: { accessKeyId: 'id', secretAccessKey: 'secret' },
    });
    try {
      await expect(broken.invoke({})).rejects.toThrow(/initialisation failed: Error: no configuration/);
    } finally {
      await broken.stop();
    }
  });
});
