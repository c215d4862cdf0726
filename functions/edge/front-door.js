import cf from 'cloudfront';
// biome-ignore lint/style/useNodejsImportProtocol: the cloudfront-js-2.0 runtime knows the module as 'crypto' only
import crypto from 'crypto';

// The registry's front door: a CloudFront Function (cloudfront-js-2.0, viewer request) on every
// behavior of the distribution. docs/front-door.md says why; front-door-code.ts substitutes the
// settings below at synth time. Runtime limits: only the `cloudfront` and `crypto` modules, no
// network, at most 10 KB of code. Comment lines are stripped before the size counts.

const SETTINGS = __FRONT_DOOR_SETTINGS__;

const ORIGIN_SECRET_HEADER = 'x-registry-origin-secret';
const VIEWER_ADDRESS_HEADER = 'x-registry-viewer-address';
const ENTRY_HEADER = 'x-registry-entry';
const UPLOAD_SESSION = /^\/v2\/(.+)\/blobs\/uploads\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;
const UPLOAD_PATH = /^\/v2\/.+\/blobs\/uploads(\/|$)/;
const SHA256_DIGEST = /^sha256:([0-9a-f]{64})$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const STATUS_TEXT = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden' };
const kvs = cf.kvs();

// biome-ignore lint/correctness/noUnusedVariables: CloudFront calls `handler`
async function handler(event) {
  const request = event.request;
  const session = UPLOAD_SESSION.exec(request.uri);
  // The Docker mirror entry is read-only: no direct uploads there.
  if (session && request.method === 'PUT' && !SETTINGS.entry) {
    const direct = await directUpload(request, session[1], session[2]);
    if (direct) return direct;
  }
  const origin = registryOrigin(request);
  request.headers[ORIGIN_SECRET_HEADER] = { value: await kvs.get('origin-secret') };
  request.headers[VIEWER_ADDRESS_HEADER] = { value: event.viewer.ip };
  // Which entry the request came in by (the Docker mirror's distribution sets it); never a viewer's copy.
  if (SETTINGS.entry) request.headers[ENTRY_HEADER] = { value: SETTINGS.entry };
  else delete request.headers[ENTRY_HEADER];
  // Always chosen here, whatever the behavior's own origin (each origin has a behavior of its own).
  cf.selectRequestOriginById(origin);
  return request;
}

// Which registry origin answers: the gateway takes upload bodies when it exists; a replica
// region takes the pulls of viewers nearer to it; the primary region everything else.
function registryOrigin(request) {
  const method = request.method;
  const upload = UPLOAD_PATH.test(request.uri);
  if (upload && SETTINGS.origins.gateway && (method === 'PATCH' || method === 'PUT')) return SETTINGS.origins.gateway;
  if (!upload && (method === 'GET' || method === 'HEAD') && request.uri.indexOf('/v2/') === 0) {
    const country = header(request, 'cloudfront-viewer-country');
    const region = country && SETTINGS.countryRegions[country];
    if (region && SETTINGS.origins.replicas[region]) return SETTINGS.origins.replicas[region];
  }
  return SETTINGS.origins.api;
}

// A monolithic PUT of a sha256 blob with a ticket and a body goes straight to the bucket, at
// the key the session owns, with the checksum S3 verifies. Answers the request (or a refusal)
// for the bucket, undefined for the registry.
async function directUpload(request, name, sessionId) {
  const ticket = query(request, 'ticket');
  const digest = SHA256_DIGEST.exec(query(request, 'digest') || '');
  const length = header(request, 'content-length');
  if (!ticket || !digest || !length || !/^[0-9]+$/.test(length) || Number(length) === 0) return undefined;
  if (header(request, 'transfer-encoding')) return undefined;
  const problem = await ticketProblem(ticket, name, sessionId);
  if (problem) return problem;
  if (Number(length) > SETTINGS.maxPutBytes) {
    return refusal(400, 'SIZE_INVALID', `a single PUT takes at most ${SETTINGS.maxPutBytes} bytes: send the blob in PATCH chunks`, {
      size: Number(length),
      limit: SETTINGS.maxPutBytes,
    });
  }
  const hex = digest[1];
  const headers = {};
  for (const key of Object.keys(request.headers)) {
    if (key.indexOf('x-amz-') !== 0 && key !== 'authorization' && key !== ORIGIN_SECRET_HEADER) headers[key] = request.headers[key];
  }
  headers['x-amz-checksum-sha256'] = { value: hexToBase64(hex) };
  headers['x-amz-meta-registry-repository'] = { value: name };
  headers['x-amz-meta-registry-session'] = { value: sessionId };
  request.headers = headers;
  request.uri = `/${SETTINGS.directUploadPrefix}sha256/${hex}/${sessionId}`;
  request.querystring = {};
  cf.selectRequestOriginById(SETTINGS.origins.uploads);
  return request;
}

// The registry's upload tickets (registry/services/uploads/upload-tickets.ts): v1.<claims>.<mac>,
// HMAC-SHA256 over `v1.<claims>` with any current secret. Refusals as the upload gateway's:
// 401 for a malformed, forged or expired ticket, 403 for one of another upload.
async function ticketProblem(ticket, name, sessionId) {
  const fresh = ` (GET /v2/${name}/blobs/uploads/${sessionId} answers a fresh Location)`;
  const parts = ticket.split('.');
  if (parts.length !== 3 || parts[0] !== 'v1' || !BASE64URL.test(parts[1]) || !BASE64URL.test(parts[2])) {
    return refusal(401, 'UNAUTHORIZED', `the upload ticket is not valid${fresh}`, { reason: 'malformed' });
  }
  const signed = `${parts[0]}.${parts[1]}`;
  const secrets = (await kvs.get('ticket-secrets')).split(/[\s,]+/);
  let authentic = false;
  for (const secret of secrets) {
    if (secret) authentic = sameText(toBase64url(crypto.createHmac('sha256', secret).update(signed).digest('base64')), parts[2]) || authentic;
  }
  if (!authentic) return refusal(401, 'UNAUTHORIZED', `the upload ticket is not valid${fresh}`, { reason: 'forged' });
  let claims;
  try {
    claims = JSON.parse(fromBase64url(parts[1]));
  } catch (_error) {
    return refusal(401, 'UNAUTHORIZED', `the upload ticket is not valid${fresh}`, { reason: 'malformed' });
  }
  if (!claims || typeof claims.e !== 'number' || !Array.isArray(claims.a)) {
    return refusal(401, 'UNAUTHORIZED', `the upload ticket is not valid${fresh}`, { reason: 'malformed' });
  }
  if (claims.e * 1000 <= Date.now()) return refusal(401, 'UNAUTHORIZED', `the upload ticket has expired${fresh}`, { reason: 'expired' });
  if (claims.r !== name || claims.u !== sessionId || claims.a.indexOf('put') < 0) {
    return refusal(403, 'DENIED', 'the upload ticket is for another upload', [{ Type: 'upload', Name: name, Action: 'put' }]);
  }
  return undefined;
}

function refusal(status, code, message, detail) {
  return {
    statusCode: status,
    statusDescription: STATUS_TEXT[status],
    headers: { 'content-type': { value: 'application/json' }, 'docker-distribution-api-version': { value: 'registry/2.0' } },
    body: { encoding: 'text', data: JSON.stringify({ errors: [{ code: code, message: message, detail: detail }] }) },
  };
}

function header(request, name) {
  const entry = request.headers[name];
  return entry ? entry.value : undefined;
}

function query(request, name) {
  const entry = request.querystring[name];
  if (!entry || (entry.multiValue && entry.multiValue.length > 1)) return undefined;
  // CloudFront passes query values as sent: Go clients send `digest=sha256%3A<hex>`.
  try {
    return decodeURIComponent(entry.value);
  } catch (_error) {
    return undefined;
  }
}

// Compares in time that depends only on the lengths, which are public.
function sameText(a, b) {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

function toBase64url(base64) {
  return base64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64url(text) {
  let bits = 0;
  let value = 0;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    value = ((value << 6) | B64.indexOf(text[i] === '-' ? '+' : text[i] === '_' ? '/' : text[i])) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += String.fromCharCode((value >> bits) & 0xff);
    }
  }
  return out;
}

function hexToBase64(hex) {
  let out = '';
  for (let i = 0; i < hex.length; i += 6) {
    const chunk = hex.slice(i, i + 6);
    const n = parseInt(chunk.padEnd(6, '0'), 16);
    const bytes = chunk.length / 2;
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63] + (bytes > 1 ? B64[(n >> 6) & 63] : '=') + (bytes > 2 ? B64[n & 63] : '=');
  }
  return out;
}
