import { describe, expect, it } from 'vitest';
import type { CacheTarget } from '../../../../registry/model/pull-through/upstream.js';
import { UpstreamError } from '../../../../registry/model/pull-through/upstream-error.js';
import type { ManifestService } from '../../../../registry/services/manifests/manifest-service.js';
import { ManifestCache } from '../../../../registry/services/pull-through/manifest-cache.js';
import type { UpstreamClient } from '../../../../registry/services/pull-through/upstream-client.js';
import type { DescribedTag, ManifestStore } from '../../../../registry/storage/manifest-store.js';
import type { TagPullLeases } from '../../../../registry/storage/tag-pull-leases.js';
import { silentLogger } from '../../../../registry/support/logger.js';

const DAY = 86_400_000;
const DIGEST = `sha256:${'a'.repeat(64)}`;
const target: CacheTarget = {
  upstream: {
    name: 'hub',
    url: 'https://r.example',
    prefix: 'hub',
    hosts: [],
    dockerHub: true,
    tagTtlSeconds: 60,
    credentials: 'none',
    credentialsVersion: 1,
    createdAt: '',
    updatedAt: '',
  },
  upstreamPath: 'library/app',
};

/** A cache over one cached tag, on a fake clock, recording what it asks the store and the upstream. */
function setUp(head: () => Promise<{ digest?: string; mediaType: string; size: number }>) {
  const clock = { now: 100 * DAY };
  const calls: string[] = [];
  const tag: DescribedTag = {
    digest: DIGEST,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    size: 2,
    bytes: new Uint8Array([123, 125]),
    checkedAt: clock.now,
  };
  const store = {
    describeTag: async () => ({ ...tag }),
    touchCheckedAt: async (_repository: string, _tag: string, _digest: string, at: number) => {
      calls.push('touchCheckedAt');
      tag.checkedAt = at;
      return true;
    },
    markTagPulled: async (_repository: string, _tag: string, day: number) => {
      calls.push(`markTagPulled ${day}`);
      tag.pulledAt = day;
    },
    deleteTagIf: async () => calls.push('deleteTagIf') > 0,
  } as unknown as ManifestStore;
  const client = {
    headManifest: async () => {
      calls.push('HEAD');
      return head();
    },
    getManifest: async () => {
      calls.push('GET');
      throw new Error('not expected');
    },
  } as unknown as UpstreamClient;
  const leases = { acquire: async () => 'me', release: async () => undefined } as unknown as TagPullLeases;
  const cache = new ManifestCache(store, {} as ManifestService, client, leases, silentLogger, { now: () => clock.now });
  return { cache, clock, calls, tag };
}

describe('cached tags', () => {
  it('fresh: served without asking the upstream; stamped pulled once a day however often it is pulled', async () => {
    const { cache, clock, calls } = setUp(async () => ({ digest: DIGEST, mediaType: '', size: 2 }));
    for (let pull = 0; pull < 5; pull++) expect((await cache.find(target, 'hub/library/app', { tag: 'v1' })).manifest.digest).toBe(DIGEST);
    expect(calls).toEqual(['markTagPulled 100']);
    clock.now += 30_000;
    await cache.find(target, 'hub/library/app', { tag: 'v1' });
    expect(calls).toEqual(['markTagPulled 100']);
  });

  it('expired and unchanged upstream: one HEAD, checkedAt moves, no GET', async () => {
    const { cache, clock, calls, tag } = setUp(async () => ({ digest: DIGEST, mediaType: '', size: 2 }));
    clock.now += 61_000;
    const answer = await cache.find(target, 'hub/library/app', { tag: 'v1' });
    expect(answer.stale).toBeUndefined();
    expect(calls.filter((call) => !call.startsWith('markTagPulled'))).toEqual(['HEAD', 'touchCheckedAt']);
    expect(tag.checkedAt).toBe(clock.now);
  });

  it('expired and the upstream down: the cached copy, marked stale since it was last confirmed', async () => {
    const { cache, clock, tag } = setUp(async () => {
      throw new UpstreamError('unavailable', 'hub', 'upstream hub answered 503', { status: 503 });
    });
    const confirmed = tag.checkedAt!;
    clock.now += 2 * DAY;
    const answer = await cache.find(target, 'hub/library/app', { tag: 'v1' });
    expect(answer.manifest.digest).toBe(DIGEST);
    expect(answer.stale).toEqual({ upstream: 'hub', reason: 'upstream hub answered 503', checkedAt: confirmed });
  });

  it('expired and gone upstream: the tag is deleted and the pull is MANIFEST_UNKNOWN', async () => {
    const { cache, clock, calls } = setUp(async () => {
      throw new UpstreamError('notFound', 'hub', 'upstream hub has no library/app/manifests/v1', { status: 404 });
    });
    clock.now += 61_000;
    await expect(cache.find(target, 'hub/library/app', { tag: 'v1' })).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN', status: 404 });
    expect(calls).toContain('deleteTagIf');
  });
});
