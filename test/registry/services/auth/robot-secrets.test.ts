import { beforeEach, describe, expect, it, vi } from 'vitest';

// Counts the key derivations, which set how long a refusal takes: timing itself would be flaky.
const derivations = vi.hoisted(() => ({ count: 0 }));
vi.mock('node:crypto', async (importOriginal) => {
  const crypto = await importOriginal<typeof import('node:crypto')>();
  return {
    ...crypto,
    scrypt: (...args: Parameters<typeof crypto.scrypt>) => {
      derivations.count++;
      return (crypto.scrypt as (...forwarded: unknown[]) => void)(...args);
    },
  };
});

const { hashRobotSecret, verifyRobotSecret } = await import('../../../../registry/services/auth/robot-secrets.js');

describe('robot secrets', () => {
  let stored: string;
  beforeEach(async () => {
    stored = await hashRobotSecret('the right secret');
    derivations.count = 0;
  });

  it('accepts the right secret and refuses a wrong one', async () => {
    expect(await verifyRobotSecret('the right secret', stored)).toBe(true);
    expect(await verifyRobotSecret('a wrong secret', stored)).toBe(false);
  });

  it('does the same scrypt work to refuse a robot that does not exist as one given a wrong secret', async () => {
    await verifyRobotSecret('a wrong secret', stored);
    const forKnown = derivations.count;
    derivations.count = 0;
    expect(await verifyRobotSecret('a wrong secret', undefined)).toBe(false);
    expect(forKnown).toBe(1);
    expect(derivations.count).toBe(forKnown);
  });
});
