import { DeleteCommand, GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { keys } from './keys.js';
import { isConditionFailure, type TransactionItem } from './dynamo-errors.js';
import type { DigestAlgorithm } from '../model/oci/grammar.js';

/**
 * An upload in progress. Everything needed to continue it lives here, so that each request
 * of one upload may reach a different Lambda instance or a restarted server.
 * Invariant: `offset` bytes were received; the S3 parts hold the first ones, the tail object
 * the rest (fewer than S3's minimum part size, or, after a whole-body PATCH, all of them as one
 * object the PATCH put together). What proves their digest: `hashState` has seen
 * all of them (a chunked upload), or `bytesDigest` is their digest (one streamed body, hashed
 * natively, which cannot be resumed), or neither (bytes came after such a body: the finish
 * reads the assembled object back once).
 */
export interface UploadSession {
  id: string;
  repository: string;
  offset: number;
  /** What `hashState` computes: sha256 unless the client asked otherwise when it opened the upload. */
  algorithm?: DigestAlgorithm;
  /** Resumable hash state (hash-wasm) after all `offset` bytes; absent at offset 0. */
  hashState?: Uint8Array;
  /** The digest of all `offset` bytes, when one streamed body brought them all (native SHA). */
  bytesDigest?: string;
  /** The S3 multipart upload, created when the first full part is ready. */
  multipartUploadId?: string;
  /**
   * Parts 1..partCount of the multipart upload hold the first `offset - tailSize` bytes; their
   * ETags are listed at the finish (ListParts), not kept here, so the item keeps one size
   * whatever the number of parts. `partsChain` (SHA-256 over the ETags in order) proves the
   * listed parts are the ones this session's requests wrote.
   */
  partCount: number;
  partsChain?: string;
  tailKey?: string;
  tailSize: number;
  /** Incremented on every save; a save based on a stale read is refused. */
  version: number;
  /** The request writing to the upload now, and until when (epoch ms) others must keep off. */
  leaseHolder?: string;
  leaseUntil?: number;
  createdAt: number;
  /** Epoch seconds; also the table's TTL attribute. */
  expiresAt: number;
  /**
   * Set when the client uploads the bytes straight to S3 (docs/direct-push.md): the session then
   * takes no PATCH or PUT, and `multipartUploadId` is the multipart upload the client's parts go to.
   */
  direct?: DirectUploadState;
}

/** A direct upload: what the client claimed, how it is cut into parts, and how far verification got. */
export interface DirectUploadState {
  /** The sha256 digest the client claims; nothing is recorded under it before it is proven. */
  digest: string;
  size: number;
  partSize: number;
  partCount: number;
  /** `parts`: the client uploads parts; `verifying`: the object is assembled and being hashed. */
  phase: 'parts' | 'verifying';
  /** The assembled object's ETag: every read of it must find this one, or the object changed. */
  objectETag?: string;
  /** Bytes of the assembled object hashed so far (`hashState` has seen exactly these). */
  verified: number;
  /** Saved SHA-256 state (hash-wasm) after `verified` bytes. */
  hashState?: Uint8Array;
}

export class UploadSessionStore {
  constructor(
    private readonly dynamo: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** Answers undefined for an unknown or expired session (TTL deletion lags by up to days). */
  async get(id: string): Promise<UploadSession | undefined> {
    const { Item } = await this.dynamo.send(new GetCommand({ TableName: this.tableName, Key: keys.uploadSession(id), ConsistentRead: true }));
    if (!Item || (Item.expiresAt as number) * 1000 <= Date.now()) return undefined;
    const { PK: _pk, SK: _sk, ...session } = Item;
    return session as UploadSession;
  }

  /**
   * Saves `session` if the stored one is still at `session.version - 1` (or absent, for
   * version 1). Answers false when another request got there first.
   */
  async save(session: UploadSession): Promise<boolean> {
    try {
      await this.dynamo.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.uploadSession(session.id), ...session },
          ...(session.version === 1
            ? { ConditionExpression: 'attribute_not_exists(PK)' }
            : {
                ConditionExpression: '#version = :previous',
                ExpressionAttributeNames: { '#version': 'version' },
                ExpressionAttributeValues: { ':previous': session.version - 1 },
              }),
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /**
   * The write that ends a session inside another transaction (the finish's): deletes it on
   * condition that it is still at `version`, i.e. no other request changed or leased it since.
   */
  endWrite(id: string, version: number): TransactionItem {
    return { Delete: this.deleteAt(id, version) };
  }

  /** Ends the session if it is still at `version`; answers false when another request changed or ended it. */
  async end(id: string, version: number): Promise<boolean> {
    try {
      await this.dynamo.send(new DeleteCommand(this.deleteAt(id, version)));
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async delete(id: string): Promise<void> {
    await this.dynamo.send(new DeleteCommand({ TableName: this.tableName, Key: keys.uploadSession(id) }));
  }

  private deleteAt(id: string, version: number) {
    return {
      TableName: this.tableName,
      Key: keys.uploadSession(id),
      ConditionExpression: '#version = :version',
      ExpressionAttributeNames: { '#version': 'version' },
      ExpressionAttributeValues: { ':version': version },
    };
  }
}
