/**
 * An upstream's `WWW-Authenticate` challenge (RFC 7235, as registries send it): `Basic
 * realm="..."` or `Bearer realm="...",service="...",scope="..."`. Anything else is undefined.
 */
export type Challenge = { scheme: 'basic'; realm?: string } | { scheme: 'bearer'; realm: string; service?: string; scope?: string };

/** `key="quoted value"` or `key=token`, separated by commas; quoted values may hold commas and `\"`. */
const PARAM = /\s*([a-zA-Z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)/y;

export function parseChallenge(header: string | null | undefined): Challenge | undefined {
  if (!header) return undefined;
  const match = /^\s*(\w+)(?:\s+(.*))?$/s.exec(header);
  if (!match) return undefined;
  const scheme = match[1]!.toLowerCase();
  const params = parseParams(match[2] ?? '');
  if (scheme === 'basic') return { scheme: 'basic', ...(params.realm === undefined ? {} : { realm: params.realm }) };
  if (scheme !== 'bearer' || !params.realm) return undefined;
  return {
    scheme: 'bearer',
    realm: params.realm,
    ...(params.service === undefined ? {} : { service: params.service }),
    ...(params.scope === undefined ? {} : { scope: params.scope }),
  };
}

function parseParams(text: string): Record<string, string> {
  const params: Record<string, string> = {};
  PARAM.lastIndex = 0;
  while (PARAM.lastIndex < text.length) {
    const match = PARAM.exec(text);
    if (!match) break;
    const key = match[1]!.toLowerCase();
    if (!(key in params)) params[key] = match[2] !== undefined ? match[2].replace(/\\(.)/g, '$1') : (match[3] ?? '');
  }
  return params;
}
