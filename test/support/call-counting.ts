/**
 * The call-counting harness of the tests that pin what a request costs in DynamoDB and S3 calls
 * (docs/storage.md, "Access patterns"): the local stack for one test file with the registry's own
 * SDK middleware (registry/storage/call-counter.ts) counting every call it makes.
 */
import { expect } from 'vitest';
import type { LocalRegistryOptions } from '../../scripts/local/local-registry.js';
import { CallCounter } from '../../registry/storage/call-counter.js';
import { useLocalStack, type LocalStack } from '../integration/local-stack.js';

export interface CountedStack extends LocalStack {
  /** Counts the registry's calls; give it to other clients whose calls should count too. */
  counter: CallCounter;
  /** The calls `work` made, by operation (e.g. `{ 'DynamoDB.GetItem': 1 }`). */
  callsOf(work: () => Promise<unknown>): Promise<Record<string, number>>;
}

export function useCallCountingStack(name: string, options: Partial<LocalRegistryOptions> = {}): CountedStack {
  const counter = new CallCounter();
  // A warm instance: the upstream list (pull-through name resolution) is read once and kept, so its
  // 5 s refresh never lands in a counted request (docs/storage.md: one Query per 5 s per instance).
  const overrides = { ...options.overrides, pullThrough: { upstreamsCacheMs: 3_600_000, ...options.overrides?.pullThrough } };
  const stack = useLocalStack(name, { ...options, overrides, callCounter: counter });
  return Object.assign(stack, {
    counter,
    async callsOf(work: () => Promise<unknown>) {
      counter.take();
      await work();
      return counter.take().calls;
    },
  });
}

/** The response, once it has `status` (the body is the failure message otherwise). */
export async function expectStatus(response: Promise<Response>, status: number): Promise<Response> {
  const answer = await response;
  expect(answer.status, await answer.clone().text()).toBe(status);
  return answer;
}
