import { DeleteCommand, PutCommand, QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Upstream } from '../model/pull-through/upstream.js';
import { CATALOG_PARTITION, UPSTREAM_PARTITION, keys } from './keys.js';
import { isConditionFailure } from './dynamo-errors.js';
import { keyCondition, queryItems } from './query-items.js';
import { CachedRead } from './cached-read.js';

/** How long a warm instance resolves names with the upstreams it read (as the access policy is cached). */
export const UPSTREAMS_CACHE_MS = 5_000;

/** `upstream add` of a name that exists, without `--replace`. */
export class UpstreamExistsError extends Error {
  constructor(readonly upstream: string) {
    super(`upstream ${upstream} exists`);
    this.name = 'UpstreamExistsError';
  }
}

const ATTRIBUTES = [
  'name',
  'url',
  'prefix',
  'hosts',
  'dockerHub',
  'tagTtlSeconds',
  'keepDays',
  'credentials',
  'credentialsVersion',
  'createdAt',
  'updatedAt',
];

function upstreamOf(item: Record<string, unknown>): Upstream {
  return {
    name: item.name as string,
    url: item.url as string,
    prefix: item.prefix as string,
    hosts: (item.hosts as string[] | undefined) ?? [],
    dockerHub: item.dockerHub === true,
    tagTtlSeconds: (item.tagTtlSeconds as number | undefined) ?? 300,
    ...(typeof item.keepDays === 'number' ? { keepDays: item.keepDays } : {}),
    credentials: item.credentials === 'basic' ? 'basic' : 'none',
    credentialsVersion: (item.credentialsVersion as number | undefined) ?? 0,
    createdAt: item.createdAt as string,
    updatedAt: item.updatedAt as string,
  };
}

/**
 * The pull-through upstreams: one small partition, read whole with one Query. Name resolution
 * reads it eventually consistent, at most once per UPSTREAMS_CACHE_MS (or the configured period) per instance; the admin
 * CLI strongly.
 */
export class UpstreamStore {
  private readonly cached: CachedRead<Upstream[]>;

  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
    cacheMs: number = UPSTREAMS_CACHE_MS,
    now: () => number = Date.now,
  ) {
    this.cached = new CachedRead(() => this.read(true), cacheMs, now);
  }

  /** The upstreams as read at most UPSTREAMS_CACHE_MS ago; concurrent requests share one read. */
  listCached(): Promise<Upstream[]> {
    return this.cached.get();
  }

  /** The upstreams as stored now, by name. */
  list(): Promise<Upstream[]> {
    return this.read(false);
  }

  async get(name: string): Promise<Upstream | undefined> {
    return (await this.list()).find((upstream) => upstream.name === name);
  }

  private async read(eventual: boolean): Promise<Upstream[]> {
    const items = await queryItems(this.dynamo, this.tableName, UPSTREAM_PARTITION, { eventual });
    return items.map(upstreamOf);
  }

  /** Writes the upstream; without `replace` only if no upstream has its name (UpstreamExistsError). */
  async put(upstream: Upstream, options: { replace?: boolean } = {}): Promise<void> {
    const item = Object.fromEntries(
      ATTRIBUTES.flatMap((name) => (upstream[name as keyof Upstream] === undefined ? [] : [[name, upstream[name as keyof Upstream]]])),
    );
    try {
      await this.dynamo.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.upstream(upstream.name), ...item },
          ...(options.replace ? {} : { ConditionExpression: 'attribute_not_exists(PK)' }),
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) throw new UpstreamExistsError(upstream.name);
      throw error;
    }
    this.cached.clear();
  }

  /** Answers whether there was one. */
  async delete(name: string): Promise<boolean> {
    const { Attributes } = await this.dynamo.send(
      new DeleteCommand({ TableName: this.tableName, Key: keys.upstream(name), ReturnValues: 'ALL_OLD' }),
    );
    this.cached.clear();
    return Attributes !== undefined;
  }

  /** Every repository cached from `upstream` under its `prefix/` (paged): what `--keep-days` expires in. */
  async cachedRepositories(upstream: Pick<Upstream, 'name' | 'prefix'>): Promise<string[]> {
    const names: string[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const { Items, LastEvaluatedKey } = await this.dynamo.send(
        new QueryCommand({
          TableName: this.tableName,
          ...keyCondition(CATALOG_PARTITION, `${upstream.prefix}/`),
          ProjectionExpression: '#name, cachedFrom',
          ExpressionAttributeNames: { '#name': 'name' },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of Items ?? []) if (item.cachedFrom === upstream.name && typeof item.name === 'string') names.push(item.name);
      start = LastEvaluatedKey;
    } while (start);
    return names;
  }

  /**
   * Up to `limit` repositories under `prefix/` that are the registry's own (no `cachedFrom`):
   * what `upstream add` refuses to claim. Reads every catalog entry under the prefix if it must.
   */
  async ownRepositoriesUnder(prefix: string, limit = 10): Promise<string[]> {
    const names: string[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.dynamo.send(
        new QueryCommand({
          TableName: this.tableName,
          ...keyCondition(CATALOG_PARTITION, `${prefix}/`),
          FilterExpression: 'attribute_exists(#name) AND attribute_not_exists(cachedFrom)',
          ProjectionExpression: '#name',
          ExpressionAttributeNames: { '#name': 'name' },
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
        }),
      );
      names.push(...(page.Items ?? []).map((item) => item.name as string));
      startKey = page.LastEvaluatedKey;
    } while (startKey && names.length < limit);
    return names.slice(0, limit);
  }
}
