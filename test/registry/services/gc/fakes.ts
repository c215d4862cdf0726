/**
 * In-memory stand-ins for the DynamoDB document client and S3, with the semantics garbage
 * collection relies on: conditional writes (a small evaluator of condition expressions),
 * parallel Scan segments with paging, and S3 listings with LastModified. Each records the
 * writes it was sent, and runs an optional hook before each command, through which a test
 * plays a concurrent registry request.
 */
import {
  BatchGetCommand,
  DeleteCommand,
  GetCommand,
  PutCommand,
  ScanCommand,
  TransactWriteCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';

type Item = Record<string, unknown>;
type Hook = (command: { name: string; input: Record<string, any> }) => void | Promise<void>;

function awsError(name: string, message = name): Error {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode: name === 'NotFound' || name === 'NoSuchKey' ? 404 : 400 } });
}

const itemKey = (key: { PK: unknown; SK: unknown }) => `${String(key.PK)}\u0000${String(key.SK)}`;

export class FakeDynamo {
  readonly items = new Map<string, Item>();
  readonly writes: { op: string; PK: string; SK: string }[] = [];
  /** Items per Scan page, small so that paging is exercised. */
  pageSize = 3;
  before?: Hook;

  asClient(): DynamoDBDocumentClient {
    return this as unknown as DynamoDBDocumentClient;
  }

  put(item: Item): void {
    this.items.set(itemKey(item as { PK: string; SK: string }), structuredClone(item));
  }

  get(PK: string, SK: string): Item | undefined {
    return this.items.get(itemKey({ PK, SK }));
  }

  async send(command: unknown): Promise<unknown> {
    const input = (command as { input: Record<string, any> }).input;
    const name = (command as object).constructor.name;
    await this.before?.({ name, input });
    if (command instanceof ScanCommand) return this.scan(input);
    if (command instanceof GetCommand) return { Item: structuredClone(this.items.get(itemKey(input.Key))) };
    if (command instanceof BatchGetCommand) {
      const [table, request] = Object.entries(input.RequestItems as Record<string, { Keys: Record<string, unknown>[] }>)[0]!;
      const found = request.Keys.flatMap((key) => {
        const item = this.items.get(itemKey(key as { PK: string; SK: string }));
        return item ? [structuredClone(item)] : [];
      });
      return { Responses: { [table]: found } };
    }
    if (command instanceof TransactWriteCommand) {
      // All conditions first, as DynamoDB does; then every write, or none.
      const writes = (input.TransactItems as Record<string, Record<string, any>>[]).map((entry) => Object.entries(entry)[0]!);
      const reasons = writes.map(([, write]) => {
        if (!write.ConditionExpression) return { Code: 'None' };
        const key = write.Key ?? write.Item;
        const holds = evaluateCondition(
          write.ConditionExpression,
          this.items.get(itemKey(key)),
          write.ExpressionAttributeNames ?? {},
          write.ExpressionAttributeValues ?? {},
        );
        return { Code: holds ? 'None' : 'ConditionalCheckFailed' };
      });
      if (reasons.some((reason) => reason.Code !== 'None')) {
        throw Object.assign(awsError('TransactionCanceledException', 'Transaction cancelled'), { CancellationReasons: reasons });
      }
      for (const [kind, write] of writes) {
        const { ConditionExpression: _condition, ...unconditional } = write;
        if (kind === 'Update') await this.send(new UpdateCommand(unconditional as never));
        else if (kind === 'Put') await this.send(new PutCommand(unconditional as never));
        else if (kind === 'Delete') await this.send(new DeleteCommand(unconditional as never));
      }
      return {};
    }
    if (command instanceof PutCommand) {
      this.check(input, this.items.get(itemKey(input.Item)));
      this.writes.push({ op: 'put', PK: input.Item.PK, SK: input.Item.SK });
      this.put(input.Item);
      return {};
    }
    if (command instanceof DeleteCommand) {
      this.check(input, this.items.get(itemKey(input.Key)));
      this.writes.push({ op: 'delete', PK: input.Key.PK, SK: input.Key.SK });
      this.items.delete(itemKey(input.Key));
      return {};
    }
    if (command instanceof UpdateCommand) {
      const current = this.items.get(itemKey(input.Key));
      this.check(input, current);
      this.writes.push({ op: 'update', PK: input.Key.PK, SK: input.Key.SK });
      const updated = { ...(current ?? input.Key) };
      const clauses = /^(?:SET (.+?))?\s*(?:ADD (.+))?$/.exec(input.UpdateExpression as string);
      if (!clauses || !(clauses[1] || clauses[2])) throw new Error(`fake supports SET and ADD only: ${input.UpdateExpression}`);
      for (const assignment of clauses[1]?.split(',') ?? []) {
        const [path, value] = assignment.split('=').map((part) => part.trim());
        updated[resolveName(path, input.ExpressionAttributeNames)] = input.ExpressionAttributeValues[value];
      }
      for (const addition of clauses[2]?.split(',') ?? []) {
        const [path, value] = addition.trim().split(/\s+/);
        const name = resolveName(path, input.ExpressionAttributeNames);
        updated[name] = ((updated[name] as number | undefined) ?? 0) + (input.ExpressionAttributeValues[value] as number);
      }
      this.items.set(itemKey(input.Key), updated);
      return { Attributes: input.ReturnValues === 'ALL_NEW' || input.ReturnValues === 'UPDATED_NEW' ? structuredClone(updated) : undefined };
    }
    throw new Error(`FakeDynamo does not support ${name}`);
  }

  private check(input: Record<string, any>, item: Item | undefined): void {
    if (!input.ConditionExpression) return;
    const holds = evaluateCondition(input.ConditionExpression, item, input.ExpressionAttributeNames ?? {}, input.ExpressionAttributeValues ?? {});
    if (!holds) throw awsError('ConditionalCheckFailedException', 'The conditional request failed');
  }

  private scan(input: Record<string, any>) {
    const total = input.TotalSegments ?? 1;
    const segment = input.Segment ?? 0;
    const keys = [...this.items.keys()].filter((key) => hash(key) % total === segment).sort();
    const start = input.ExclusiveStartKey ? keys.indexOf(itemKey(input.ExclusiveStartKey)) + 1 : 0;
    const page = keys.slice(start, start + this.pageSize);
    const last = page.length > 0 && start + page.length < keys.length ? this.items.get(page[page.length - 1]) : undefined;
    return {
      Items: page.map((key) => structuredClone(this.items.get(key))),
      LastEvaluatedKey: last ? { PK: last.PK, SK: last.SK } : undefined,
    };
  }
}

function hash(text: string): number {
  let value = 2166136261;
  for (let i = 0; i < text.length; i++) value = Math.imul(value ^ text.charCodeAt(i), 16777619) >>> 0;
  return value;
}

function resolveName(path: string, names: Record<string, string> | undefined): string {
  return path.startsWith('#') ? names![path] : path;
}

/** Condition expressions: AND, OR, NOT, parentheses, attribute_(not_)exists, = <> < <= > >=. */
export function evaluateCondition(
  expression: string,
  item: Item | undefined,
  names: Record<string, string>,
  values: Record<string, unknown>,
): boolean {
  const tokens = expression.match(/\(|\)|<>|<=|>=|=|<|>|[#:]?[A-Za-z_][A-Za-z0-9_]*/g) ?? [];
  let position = 0;
  const peek = () => tokens[position];
  const next = () => tokens[position++];
  const expect = (token: string) => {
    if (next() !== token) throw new Error(`condition "${expression}": expected ${token}`);
  };
  const operand = (): unknown => {
    const token = next();
    if (token.startsWith(':')) return values[token];
    return item?.[resolveName(token, names)];
  };
  const primary = (): boolean => {
    const token = peek();
    if (token === '(') {
      next();
      const value = or();
      expect(')');
      return value;
    }
    if (token === 'NOT') {
      next();
      return !primary();
    }
    if (token === 'attribute_exists' || token === 'attribute_not_exists') {
      next();
      expect('(');
      const attribute = resolveName(next(), names);
      const exists = item !== undefined && item[attribute] !== undefined;
      expect(')');
      return token === 'attribute_exists' ? exists : !exists;
    }
    const left = operand();
    const comparator = next();
    const right = operand();
    if (left === undefined || right === undefined) return comparator === '<>' && left !== right;
    switch (comparator) {
      case '=':
        return left === right;
      case '<>':
        return left !== right;
      case '<':
        return (left as number) < (right as number);
      case '<=':
        return (left as number) <= (right as number);
      case '>':
        return (left as number) > (right as number);
      case '>=':
        return (left as number) >= (right as number);
      default:
        throw new Error(`condition "${expression}": unknown comparator ${comparator}`);
    }
  };
  const and = (): boolean => {
    let value = primary();
    while (peek() === 'AND') {
      next();
      const right = primary();
      value = value && right;
    }
    return value;
  };
  const or = (): boolean => {
    let value = and();
    while (peek() === 'OR') {
      next();
      const right = and();
      value = value || right;
    }
    return value;
  };
  const result = or();
  if (position !== tokens.length) throw new Error(`condition "${expression}": unexpected ${peek()}`);
  return result;
}

interface StoredObject {
  size: number;
  lastModified: number;
  body?: string;
}

export class FakeS3 {
  readonly objects = new Map<string, StoredObject>();
  /** Multipart uploads in progress: upload id -> key. */
  readonly multiparts = new Map<string, string>();
  readonly writes: { op: string; key: string }[] = [];
  /** Keys per listing page, small so that paging is exercised. */
  pageSize = 2;
  before?: Hook;

  constructor(private readonly clock: () => number) {}

  asClient(): S3Client {
    return this as unknown as S3Client;
  }

  putObject(key: string, size: number, lastModified: number = this.clock()): void {
    this.objects.set(key, { size, lastModified });
  }

  async send(command: unknown): Promise<unknown> {
    const input = (command as { input: Record<string, any> }).input;
    await this.before?.({ name: (command as object).constructor.name, input });
    if (command instanceof ListObjectsCommand) {
      // Like S3 without a delimiter: no NextMarker, the caller continues after the last key.
      const keys = [...this.objects.keys()].filter((key) => key.startsWith(input.Prefix ?? '') && (!input.Marker || key > input.Marker)).sort();
      const page = keys.slice(0, this.pageSize);
      return {
        Contents: page.map((key) => ({ Key: key, Size: this.objects.get(key)!.size, LastModified: new Date(this.objects.get(key)!.lastModified) })),
        IsTruncated: page.length < keys.length,
      };
    }
    if (command instanceof HeadObjectCommand) {
      const object = this.objects.get(input.Key);
      if (!object) throw awsError('NotFound');
      return { ContentLength: object.size, LastModified: new Date(object.lastModified) };
    }
    if (command instanceof GetObjectCommand) {
      const object = this.objects.get(input.Key);
      if (!object) throw awsError('NoSuchKey');
      return { Body: { transformToString: async () => object.body ?? '' } };
    }
    if (command instanceof PutObjectCommand) {
      this.writes.push({ op: 'put', key: input.Key });
      const body = Buffer.from(input.Body as Uint8Array).toString('utf8');
      this.objects.set(input.Key, { size: body.length, lastModified: this.clock(), body });
      return {};
    }
    if (command instanceof DeleteObjectCommand) {
      this.writes.push({ op: 'delete', key: input.Key });
      this.objects.delete(input.Key);
      return {};
    }
    if (command instanceof AbortMultipartUploadCommand) {
      this.writes.push({ op: 'abort', key: input.Key });
      if (this.multiparts.get(input.UploadId) !== input.Key) throw awsError('NoSuchUpload');
      this.multiparts.delete(input.UploadId);
      return {};
    }
    throw new Error(`FakeS3 does not support ${(command as object).constructor.name}`);
  }
}
