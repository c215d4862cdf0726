/**
 * Pushes an OCI image layout or a `docker save` archive to a registry (docs/direct-push.md):
 * login, skip blobs the repository has, mount from others, small blobs in one request, large
 * ones straight to S3 in parallel parts through the registry's direct-upload extension, then
 * the manifests, children before the index that lists them.
 */
import type { Writable } from 'node:stream';
import { HttpClient, NetworkError, PermanentNetworkError, RetryableError, sleep, withRetries, type RetryOptions } from './http.js';
import { Progress, formatBytes, shortDigest } from './progress.js';
import { RegistryApiError, RegistryClient, type Credentials, type DirectPart, type UploadSession } from './registry-client.js';
import { loadSource, type BlobSource, type PushPlan } from './sources.js';
import { isLoopbackHost } from '../../registry/support/loopback.js';

const MiB = 1024 * 1024;
/** What one request through API Gateway and Lambda can carry (docs/upload-gateway.md). */
export const MONOLITHIC_MAX_BYTES = 4 * MiB;
/** Part URLs are renewed when they have less than this left. */
const URL_MARGIN_MS = 60_000;
const URL_BATCH = 1000;

export interface PushOptions {
  /** `<oci-layout-dir>[:tag]`, `<docker-save.tar>[:repo:tag]`, or an OCI archive. */
  source: string;
  /** `<registry>/<name>[:<tag>]`. */
  destination: string;
  credentials?: Credentials;
  /** Plain HTTP instead of HTTPS; by default plain HTTP to loopback hosts only, as docker does. */
  insecureHttp?: boolean;
  /** Parts (and small blobs) in flight at once. */
  concurrency?: number;
  partSizeMiB?: number;
  /** Repositories of the same registry to mount blobs from. */
  mountFrom?: string[];
  /** Where progress goes; stderr by default. */
  progressStream?: Writable & { isTTY?: boolean; columns?: number };
  quiet?: boolean;
  retry?: Partial<RetryOptions>;
}

export interface PushResult {
  reference: string;
  digest: string;
  source: PushPlan['kind'];
  /** How each blob got there. */
  blobs: { existing: number; mounted: number; monolithic: number; direct: number; streamed: number };
  manifests: { pushed: number; existing: number };
  bytesUploaded: number;
  /** Requests the verification of direct uploads took (completion + polls). */
  verificationRequests: number;
  /** Wall time of direct uploads: sending parts, and completing + proving the digest (summed over blobs). */
  directSeconds: { parts: number; verification: number };
  seconds: number;
  /** Upload throughput of the bytes sent, over the whole push. */
  megabytesPerSecond: number;
  /** This process's peak resident memory: layers are streamed, so it does not grow with them. */
  peakRssMiB: number;
}

export interface Reference {
  registry: string;
  name: string;
  tag: string;
}

/** `host[:port]/name[:tag]`, as docker writes it (a `docker://` prefix is allowed). */
export function parseReference(value: string): Reference {
  const text = value.replace(/^docker:\/\//, '');
  const slash = text.indexOf('/');
  if (slash <= 0) throw new Error(`${value}: expected <registry>/<name>:<tag>`);
  const registry = text.slice(0, slash);
  let rest = text.slice(slash + 1);
  let tag = 'latest';
  const at = rest.indexOf('@');
  if (at !== -1) throw new Error(`${value}: push to a tag, not a digest`);
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  if (!/^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/.test(rest))
    throw new Error(`${value}: invalid repository name ${rest}`);
  if (!/^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/.test(tag)) throw new Error(`${value}: invalid tag ${tag}`);
  return { registry, name: rest, tag };
}

/**
 * Whether `host[:port]` is this machine: `localhost`, 127.0.0.0/8 or `[::1]`. docker talks plain
 * HTTP to these without being told (they are never reached over a network), TLS to anything else.
 */
export function isLoopback(registry: string): boolean {
  return isLoopbackHost(registry.startsWith('[') ? registry.slice(0, registry.indexOf(']') + 1) : registry.replace(/:\d+$/, ''));
}

export async function push(options: PushOptions): Promise<PushResult> {
  const started = Date.now();
  const destination = parseReference(options.destination);
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const partSize = Math.max(5, options.partSizeMiB ?? 32) * MiB;
  const progress = new Progress(options.progressStream ?? process.stderr, { quiet: options.quiet });
  const retry: RetryOptions = {
    attempts: 6,
    baseDelayMs: 500,
    maxDelayMs: 15_000,
    onRetry: (error, attempt, delay) =>
      progress.note(`retrying in ${(delay / 1000).toFixed(1)} s (attempt ${attempt + 1}): ${(error as Error).message}`),
    ...options.retry,
  };
  const http = new HttpClient(concurrency * 2 + 4);
  try {
    const plan = await loadSource(options.source);
    const client = new RegistryClient({
      registry: destination.registry,
      name: destination.name,
      insecureHttp: options.insecureHttp ?? isLoopback(destination.registry),
      credentials: options.credentials,
      mountFrom: options.mountFrom ?? [],
      http,
      retry,
    });
    const how = await client.login();
    progress.note(
      `pushing ${plan.kind} ${options.source} to ${destination.registry}/${destination.name}:${destination.tag} (${how === 'open' ? 'no login needed' : `logged in, ${how}`})`,
    );

    const result: PushResult = {
      reference: `${destination.registry}/${destination.name}:${destination.tag}`,
      digest: '',
      source: plan.kind,
      blobs: { existing: 0, mounted: 0, monolithic: 0, direct: 0, streamed: 0 },
      manifests: { pushed: 0, existing: 0 },
      bytesUploaded: 0,
      verificationRequests: 0,
      directSeconds: { parts: 0, verification: 0 },
      seconds: 0,
      megabytesPerSecond: 0,
      peakRssMiB: 0,
    };

    // Which blobs are there already: HEAD them all (a few at a time).
    const missing: BlobSource[] = [];
    await forEachLimited(plan.blobs, concurrency * 2, async (blob) => {
      if (await client.blobExists(blob.digest)) {
        result.blobs.existing++;
        progress.note(`${shortDigest(blob.digest)} exists (${formatBytes(blob.size)})`);
      } else {
        missing.push(blob);
      }
    });
    // Largest first: they take longest, small ones fill the gaps.
    missing.sort((a, b) => b.size - a.size);
    progress.start(
      missing.reduce((sum, blob) => sum + blob.size, 0),
      missing.length,
    );

    const slots = new Limiter(concurrency);
    const uploader = new BlobUploader(client, http, slots, progress, retry, partSize, options.mountFrom ?? [], result);
    await forEachLimited(missing, concurrency, (blob) => uploader.upload(blob));
    progress.stop();

    // Manifests: children (pushed by digest, skipped when there) before the tagged one.
    const last = plan.manifests.length - 1;
    for (const [index, manifest] of plan.manifests.entries()) {
      if (index < last && (await client.manifestExists(manifest.digest))) {
        result.manifests.existing++;
        continue;
      }
      const reference = index === last ? destination.tag : manifest.digest;
      const answered = await client.putManifest(reference, manifest.mediaType, manifest.bytes);
      if (answered !== undefined && answered !== manifest.digest) throw new Error(`the registry stored manifest ${manifest.digest} as ${answered}`);
      result.manifests.pushed++;
    }
    result.digest = plan.manifests[last]!.digest;
    result.seconds = (Date.now() - started) / 1000;
    result.megabytesPerSecond = result.bytesUploaded / 1e6 / result.seconds;
    result.peakRssMiB = Math.round(process.resourceUsage().maxRSS / 1024);
    progress.note(
      `pushed ${result.reference}@${result.digest}: ${formatBytes(result.bytesUploaded)} in ${result.seconds.toFixed(1)} s ` +
        `(${result.megabytesPerSecond.toFixed(1)} MB/s); blobs: ${describeCounts(result.blobs)}`,
    );
    return result;
  } finally {
    progress.stop();
    http.close();
  }
}

function describeCounts(counts: PushResult['blobs']): string {
  return (
    Object.entries(counts)
      .filter(([, count]) => count > 0)
      .map(([kind, count]) => `${count} ${kind}`)
      .join(', ') || 'none'
  );
}

/** Uploads one blob the way that suits it, counting how in the result. */
class BlobUploader {
  constructor(
    private readonly client: RegistryClient,
    private readonly http: HttpClient,
    private readonly slots: Limiter,
    private readonly progress: Progress,
    private readonly retry: RetryOptions,
    private readonly partSize: number,
    private readonly mountFrom: string[],
    private readonly result: PushResult,
  ) {}

  async upload(blob: BlobSource): Promise<void> {
    let session: UploadSession | undefined;
    for (const from of this.mountFrom) {
      const mounted = await this.client.mount(blob.digest, from);
      if (mounted === true) {
        this.result.blobs.mounted++;
        this.progress.discount(blob.size);
        this.progress.blobDone();
        this.progress.note(`${shortDigest(blob.digest)} mounted from ${from}`);
        return;
      }
      if (session) await this.client.cancel(session);
      session = mounted;
    }
    const sent = (bytes: number) => this.progress.sent(bytes);
    if (blob.size <= MONOLITHIC_MAX_BYTES && !session) {
      await this.slots.run(() => this.client.postWhole(blob, sent));
      this.done(blob, 'monolithic');
      return;
    }
    session ??= await this.client.openSession();
    const elsewhere = session.location.origin !== this.client.base.origin;
    // Under a part: one request, if the registry takes it (up to ~4 MiB through API Gateway; any size on an upload gateway).
    if (blob.size < this.partSize && (blob.size <= MONOLITHIC_MAX_BYTES || elsewhere)) {
      const open = session;
      await this.slots.run(() => this.client.putWhole(open, blob, sent));
      this.done(blob, 'monolithic');
      return;
    }
    const how = await this.direct(session, blob);
    this.done(blob, how);
  }

  private done(blob: BlobSource, how: 'monolithic' | 'direct' | 'streamed'): void {
    this.result.blobs[how]++;
    this.result.bytesUploaded += blob.size;
    this.progress.blobDone();
    this.progress.note(`${shortDigest(blob.digest)} uploaded (${formatBytes(blob.size)}, ${how})`);
  }

  /** Parts in parallel straight to S3, then the registry proves the digest while we poll. */
  private async direct(session: UploadSession, blob: BlobSource): Promise<'direct' | 'streamed'> {
    const plan = await this.client.startDirect(session, blob, this.partSize);
    if (!plan) {
      // A registry without the extension: the whole blob in the closing PUT.
      await this.slots.run(() => this.client.putWhole(session, blob, (bytes) => this.progress.sent(bytes)));
      return 'streamed';
    }
    const partsStarted = Date.now();
    const urls = new PartUrls(this.client, session, plan.partCount, plan.parts, plan.expiresAt);
    const etags: string[] = new Array(plan.partCount);
    let failure: unknown;
    await Promise.all(
      Array.from({ length: plan.partCount }, (_, index) =>
        this.slots
          .run(async () => {
            if (failure === undefined) etags[index] = await this.uploadPart(blob, urls, index + 1);
          })
          .catch((error: unknown) => {
            failure ??= error;
          }),
      ),
    );
    if (failure !== undefined) {
      await this.client.cancel(session);
      throw failure;
    }

    const verificationStarted = Date.now();
    this.result.directSeconds.parts += (verificationStarted - partsStarted) / 1000;
    this.progress.verification(blob.digest, 0, blob.size);
    let status = await this.client.completeDirect(session, etags);
    this.result.verificationRequests++;
    try {
      for (let resent = 0; status.state !== 'complete'; ) {
        if (status.state === 'parts') {
          // The request that was completing died before S3 finished (a Lambda timeout): complete again.
          if (++resent > 3) throw new Error(`the registry did not complete the direct upload of ${blob.digest}`);
          status = await this.client.completeDirect(session, etags);
        } else {
          this.progress.verification(blob.digest, status.verified, status.size);
          await sleep(Math.max(50, status.retryAfterSeconds * 1000));
          status = await this.client.pollDirect(session);
        }
        this.result.verificationRequests++;
      }
    } catch (error) {
      // The answer that said "done" may have been lost: the session is gone then, and the blob there.
      if (!(error instanceof RegistryApiError && error.code === 'BLOB_UPLOAD_UNKNOWN' && (await this.client.blobExists(blob.digest)))) throw error;
      status = { state: 'complete' };
    } finally {
      this.progress.verified(blob.digest);
      this.result.directSeconds.verification += (Date.now() - verificationStarted) / 1000;
    }
    return 'direct';
  }

  private uploadPart(blob: BlobSource, urls: PartUrls, partNumber: number): Promise<string> {
    return withRetries(async () => {
      const part = await urls.get(partNumber);
      let sent = 0;
      try {
        const response = await this.http.request({
          method: 'PUT',
          url: new URL(part.url),
          body: () => blob.open(part.offset, part.offset + part.size),
          contentLength: part.size,
          onSent: (bytes) => {
            sent += bytes;
            this.progress.sent(bytes);
          },
        });
        const etag = response.headers.etag;
        if (response.status === 200 && typeof etag === 'string') return etag;
        this.progress.sent(-sent);
        sent = 0;
        const text = response.body.toString('utf8');
        if (response.status === 403 && /expired/i.test(text)) {
          urls.forget(partNumber);
          throw new RetryableError(`part ${partNumber}: its URL expired`, 0);
        }
        if (response.status === 408 || response.status === 429 || response.status >= 500) {
          throw new RetryableError(`part ${partNumber}: S3 answered ${response.status} ${s3ErrorCode(text)}`);
        }
        throw new Error(`part ${partNumber} of ${blob.digest}: S3 answered ${response.status} ${s3ErrorCode(text)}`);
      } catch (error) {
        if (sent > 0) this.progress.sent(-sent);
        throw error instanceof NetworkError && !(error instanceof PermanentNetworkError)
          ? new RetryableError(`part ${partNumber}: ${error.message}`)
          : error;
      }
    }, this.retry);
  }
}

function s3ErrorCode(xml: string): string {
  return /<Code>([^<]+)<\/Code>/.exec(xml)?.[1] ?? xml.slice(0, 200);
}

/** The part URLs of one upload: the first batch came with the plan; more, or fresh ones, in batches. */
class PartUrls {
  private readonly known = new Map<number, DirectPart & { expiresAt: number }>();
  private readonly pending = new Map<number, Promise<void>>();

  constructor(
    private readonly client: RegistryClient,
    private readonly session: UploadSession,
    private readonly partCount: number,
    first: DirectPart[],
    expiresAt: number,
  ) {
    for (const part of first) this.known.set(part.partNumber, { ...part, expiresAt });
  }

  async get(partNumber: number): Promise<DirectPart> {
    const part = this.known.get(partNumber);
    if (part && part.expiresAt - Date.now() > URL_MARGIN_MS) return part;
    // Renew the whole batch around this part at once: its neighbours will want theirs soon.
    const first = Math.floor((partNumber - 1) / URL_BATCH) * URL_BATCH + 1;
    let renewal = this.pending.get(first);
    if (!renewal) {
      const last = Math.min(this.partCount, first + URL_BATCH - 1);
      renewal = this.client.directPartUrls(this.session, `${first}-${last}`).then(({ parts, expiresAt }) => {
        for (const renewed of parts) this.known.set(renewed.partNumber, { ...renewed, expiresAt });
      });
      this.pending.set(first, renewal);
      renewal.finally(() => this.pending.delete(first)).catch(() => undefined);
    }
    await renewal;
    return this.known.get(partNumber)!;
  }

  forget(partNumber: number): void {
    this.known.delete(partNumber);
  }
}

/** At most `limit` tasks at once, started in the order asked. */
export class Limiter {
  private running = 0;
  private readonly queue: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    // A finishing task hands its slot straight to the next in line, so that no newcomer slips in between.
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.queue.push(resolve));
    else this.running++;
    try {
      return await task();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.running--;
    }
  }
}

async function forEachLimited<T>(items: readonly T[], limit: number, action: (item: T) => Promise<void>): Promise<void> {
  const limiter = new Limiter(limit);
  let failure: unknown;
  await Promise.all(
    items.map((item) =>
      limiter
        .run(async () => {
          if (failure === undefined) await action(item);
        })
        .catch((error: unknown) => {
          failure ??= error;
        }),
    ),
  );
  if (failure !== undefined) throw failure;
}
