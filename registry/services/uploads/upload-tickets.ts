import { createHmac, timingSafeEqual } from 'node:crypto';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { RegistryConfig, UploadTicketSettings } from '../../config/config.js';

/**
 * Upload tickets: what lets a client that follows an upload Location to the upload gateway
 * (docs/upload-gateway.md) continue the session there. Clients drop the Authorization header
 * when a Location leads to another host, so the ticket travels in the URL, as `?ticket=`.
 *
 * A ticket is `v1.<claims>.<mac>`: the claims are base64url JSON naming one repository, one
 * upload session, the actions allowed on it and an expiry; the MAC is HMAC-SHA256 over
 * `v1.<claims>` with the ticket secret, base64url. It lets a request *start*: a multi-GB body
 * that started before the expiry is not cut off.
 */

/** The query parameter that carries the ticket. */
export const TICKET_PARAMETER = 'ticket';

/** What a ticket may allow on its session: PATCH, PUT (finish), GET (status) and DELETE (cancel). */
export const SESSION_ACTIONS = ['patch', 'put', 'get', 'delete'] as const;
export type SessionAction = (typeof SESSION_ACTIONS)[number];

/** 256 bits of key for HMAC-SHA256; a secret shorter than this is a configuration error. */
export const MIN_SECRET_LENGTH = 32;

const VERSION = 'v1';
const MAC_BYTES = 32;

export interface TicketClaims {
  repository: string;
  sessionId: string;
  actions: SessionAction[];
  /** Epoch seconds after which the ticket no longer starts a request. */
  expiresAt: number;
}

export type TicketCheck = { valid: true; claims: TicketClaims } | { valid: false; reason: 'malformed' | 'forged' | 'expired'; claims?: TicketClaims };

export class UploadTickets {
  private readonly keys: Buffer[];

  /**
   * @param secrets newest first: the first signs, every one verifies (so that a secret can be
   *   rotated without breaking tickets already handed out).
   */
  constructor(
    secrets: readonly string[],
    readonly ttlSeconds: number,
    private readonly now: () => number = Date.now,
  ) {
    if (secrets.length === 0) throw new Error('upload tickets need a secret');
    for (const secret of secrets) {
      if (secret.length < MIN_SECRET_LENGTH) throw new Error(`an upload ticket secret must be at least ${MIN_SECRET_LENGTH} characters`);
    }
    if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) throw new Error('the upload ticket lifetime must be a positive number of seconds');
    this.keys = secrets.map((secret) => Buffer.from(secret, 'utf8'));
  }

  issue(repository: string, sessionId: string, actions: readonly SessionAction[] = SESSION_ACTIONS): string {
    const claims = { r: repository, u: sessionId, a: [...actions], e: Math.floor(this.now() / 1000) + this.ttlSeconds };
    const signed = `${VERSION}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    return `${signed}.${mac(this.keys[0]!, signed).toString('base64url')}`;
  }

  /** Checks the MAC (in constant time), then the claims' shape, then the expiry. */
  verify(ticket: string): TicketCheck {
    const parts = ticket.split('.');
    if (parts.length !== 3 || parts[0] !== VERSION || !BASE64URL.test(parts[1]!) || !BASE64URL.test(parts[2]!)) {
      return { valid: false, reason: 'malformed' };
    }
    const signed = `${parts[0]}.${parts[1]}`;
    const presented = Buffer.from(parts[2]!, 'base64url');
    if (presented.length !== MAC_BYTES) return { valid: false, reason: 'forged' };
    // Every key is tried, so the time taken does not tell which one matched.
    let authentic = false;
    for (const key of this.keys) authentic = timingSafeEqual(mac(key, signed), presented) || authentic;
    if (!authentic) return { valid: false, reason: 'forged' };
    const claims = parseClaims(parts[1]!);
    if (!claims) return { valid: false, reason: 'malformed' };
    if (claims.expiresAt * 1000 <= this.now()) return { valid: false, reason: 'expired', claims };
    return { valid: true, claims };
  }
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

function mac(key: Buffer, signed: string): Buffer {
  return createHmac('sha256', key).update(signed).digest();
}

function parseClaims(encoded: string): TicketClaims | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const { r, u, a, e } = raw as Record<string, unknown>;
  if (typeof r !== 'string' || typeof u !== 'string' || typeof e !== 'number' || !Array.isArray(a)) return undefined;
  if (!a.every((action): action is SessionAction => (SESSION_ACTIONS as readonly unknown[]).includes(action))) return undefined;
  return { repository: r, sessionId: u, actions: a, expiresAt: e };
}

/** The secrets in a configured value: separated by commas or white space, signing one first. */
export function parseTicketSecrets(value: string): string[] {
  return value.split(/[\s,]+/).filter((secret) => secret.length > 0);
}

const ticketsBySettings = new WeakMap<UploadTicketSettings, UploadTickets>();

/** The ticket issuer and checker of a gateway's or the front door's settings, whose secret is loaded. */
export function ticketsFor(settings: UploadTicketSettings): UploadTickets {
  let tickets = ticketsBySettings.get(settings);
  if (!tickets) {
    if (!settings.ticketSecret) {
      throw new Error('the upload ticket secret is not loaded: call withUploadTicketSecret(config) at start-up');
    }
    tickets = new UploadTickets(parseTicketSecrets(settings.ticketSecret), settings.ticketSeconds);
    ticketsBySettings.set(settings, tickets);
  }
  return tickets;
}

/**
 * Where a client continues an upload session: the registry's own path; behind the front door,
 * that path with a fresh ticket for exactly this session (the front door's function sends a
 * monolithic PUT with it straight to the bucket, and any upload gateway sits behind the same
 * host); with an upload gateway alone, an absolute URL on the gateway, with the ticket.
 */
export function uploadLocation(config: RegistryConfig, repository: string, sessionId: string): string {
  const path = `/v2/${repository}/blobs/uploads/${sessionId}`;
  if (config.frontDoor) return `${path}?${TICKET_PARAMETER}=${ticketsFor(config.frontDoor).issue(repository, sessionId)}`;
  const gateway = config.uploadGateway;
  if (!gateway) return path;
  return `${gateway.url}${path}?${TICKET_PARAMETER}=${ticketsFor(gateway).issue(repository, sessionId)}`;
}

/**
 * Loads the ticket secret (of the gateway and of the front door) and the front door's origin
 * secret from their SSM SecureString parameters when the configuration names them (in AWS); a
 * secret given directly (UPLOAD_TICKET_SECRET, ORIGIN_SECRET: local use) is kept. Call once at
 * start-up, before the configuration is used.
 */
export async function withUploadTicketSecret(config: RegistryConfig, ssm?: Pick<SSMClient, 'send'>): Promise<RegistryConfig> {
  const { uploadGateway, frontDoor } = config;
  if (!uploadGateway && !frontDoor) return config;
  let client = ssm;
  const read = new Map<string, Promise<string>>();
  const secret = async (value: string | undefined, parameter: string | undefined, what: string): Promise<string | undefined> => {
    if (value || !parameter) return value;
    client ??= new SSMClient({ region: config.region });
    const ssmClient = client;
    // The gateway and the front door share the ticket secret: one read.
    if (!read.has(parameter)) {
      read.set(
        parameter,
        ssmClient.send(new GetParameterCommand({ Name: parameter, WithDecryption: true })).then(({ Parameter }) => {
          if (!Parameter?.Value) throw new Error(`${what} parameter ${parameter} is empty`);
          return Parameter.Value;
        }),
      );
    }
    return read.get(parameter)!;
  };
  const loaded = { ...config };
  if (uploadGateway) {
    loaded.uploadGateway = {
      ...uploadGateway,
      ticketSecret: await secret(uploadGateway.ticketSecret, uploadGateway.ticketSecretParameter, 'upload ticket secret'),
    };
    // Refuse a missing or short secret now, not on the first upload.
    ticketsFor(loaded.uploadGateway);
  }
  if (frontDoor) {
    loaded.frontDoor = {
      ...frontDoor,
      ticketSecret: await secret(frontDoor.ticketSecret, frontDoor.ticketSecretParameter, 'upload ticket secret'),
      originSecret: await secret(frontDoor.originSecret, frontDoor.originSecretParameter, 'origin secret'),
    };
    if (loaded.frontDoor.ticketSecret) ticketsFor(loaded.frontDoor);
  }
  return loaded;
}
