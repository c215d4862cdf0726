/** An in-memory LoginStateStore for token service tests: the same answers, no DynamoDB. */
import type { FailureCount, LoginState, LoginStateStore } from '../../../../registry/storage/login-state-store.js';

export class MemoryLoginState {
  readonly failures = new Map<string, FailureCount & { expiresAt: number }>();
  readonly generations = new Map<string, number>();

  async read(username: string, source: string): Promise<LoginState> {
    return { user: this.count(userKey(username, source)), source: this.count(`source ${source}`), generation: await this.generation(username) };
  }

  async generation(username: string): Promise<number> {
    return this.generations.get(username.toLowerCase()) ?? 0;
  }

  async recordFailure(username: string, source: string, at: number, expiresAt: number): Promise<void> {
    for (const key of [userKey(username, source), `source ${source}`]) {
      this.failures.set(key, { failures: (this.count(key)?.failures ?? 0) + 1, lastFailureAt: at, expiresAt });
    }
  }

  async clearUserFailures(username: string, source: string): Promise<void> {
    this.failures.delete(userKey(username, source));
  }

  async signOut(username: string): Promise<number> {
    const next = (await this.generation(username)) + 1;
    this.generations.set(username.toLowerCase(), next);
    return next;
  }

  asStore(): LoginStateStore {
    return this as unknown as LoginStateStore;
  }

  private count(key: string): FailureCount | undefined {
    const count = this.failures.get(key);
    return count && count.expiresAt * 1000 > Date.now() ? count : undefined;
  }
}

function userKey(username: string, source: string): string {
  return `user ${username.toLowerCase()} ${source}`;
}
