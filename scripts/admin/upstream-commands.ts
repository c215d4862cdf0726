/** `upstream ...`: the registries the pull-through cache reads from (docs/pull-through.md). */
import {
  DEFAULT_TAG_TTL_SECONDS,
  defaultHosts,
  isDockerHubHost,
  isUpstreamName,
  isValidPrefix,
  normalizeHost,
  parseUpstreamUrl,
  prefixesOverlap,
  upstreamPathOf,
  type Upstream,
} from '../../registry/model/pull-through/upstream.js';
import { UpstreamError } from '../../registry/model/pull-through/upstream-error.js';
import { HttpUpstreamClient } from '../../registry/services/pull-through/upstream-client.js';
import { UpstreamCredentials } from '../../registry/storage/upstream-credentials.js';
import { UpstreamExistsError } from '../../registry/storage/upstream-store.js';
import { silentLogger } from '../../registry/support/logger.js';
import { parseReference } from '../../registry/model/oci/grammar.js';
import { formatTable, type Command, type CommandContext } from './command.js';
import { AdminError, UsageError } from './errors.js';

const MAX_TAG_TTL_SECONDS = 7 * 24 * 3600;
const MAX_KEEP_DAYS = 3650;

export const upstreamCommands: Command[] = [
  {
    name: 'upstream add',
    changes: true,
    args: ['<name>'],
    options: ['url', 'prefix', 'username', 'password-stdin', 'tag-ttl', 'keep-days', 'docker-hub', 'ns', 'replace'],
    optionsUsage:
      '--url <https://host[:port]> --prefix <prefix> [--username U --password-stdin] [--tag-ttl SECONDS] [--keep-days N] [--docker-hub] [--ns HOST]... [--replace]',
    summary: 'pull <registry>/<prefix>/<path> through from an upstream registry, cached',
    details:
      'The password is read from stdin only (never an argument: shell history) and kept in SSM (a stack) or an\n' +
      'owner-only file (--local), never in the table or any output.\n' +
      `--tag-ttl: seconds a cached tag is served before the upstream is asked again (default ${DEFAULT_TAG_TTL_SECONDS}; 0: always).\n` +
      '--keep-days: cached images not pulled for this many days expire in the maintenance run.\n' +
      '--docker-hub (implied for docker.io, index.docker.io, registry-1.docker.io): one-component names gain library/,\n' +
      '  ns=docker.io selects it, and the Docker Hub mirror entry (registry-mirrors) serves it.\n' +
      '--ns: the hosts containerd names with ?ns= that select it (default: the URL host).\n' +
      'Example: printf %s "$HUB_TOKEN" | upstream add hub --url https://registry-1.docker.io --prefix docker.io --username me --password-stdin',
    async run(context) {
      await addUpstream(context);
    },
  },
  {
    name: 'upstream list',
    changes: false,
    args: [],
    options: ['json'],
    optionsUsage: '[--json]',
    summary: 'list the pull-through upstreams (never their credentials)',
    async run({ options, clients, out }) {
      const upstreams = (await clients.upstreamStore().list()).sort((a, b) => a.name.localeCompare(b.name));
      if (options.json) return out.json(upstreams);
      const rows = upstreams.map((upstream) => [
        upstream.name,
        upstream.prefix,
        upstream.url,
        upstream.credentials,
        String(upstream.tagTtlSeconds),
        upstream.keepDays === undefined ? '-' : String(upstream.keepDays),
        upstream.hosts.join(','),
        upstream.dockerHub ? 'yes' : 'no',
      ]);
      for (const line of formatTable(['NAME', 'PREFIX', 'URL', 'AUTH', 'TAG-TTL', 'KEEP-DAYS', 'NS', 'DOCKER-HUB'], rows)) out.line(line);
    },
  },
  {
    name: 'upstream remove',
    changes: true,
    args: ['<name>'],
    options: [],
    summary: 'stop pulling through an upstream; its credentials go, its cached repositories stay as ordinary ones',
    async run({ args: [name], clients, out }) {
      const upstream = await clients.upstreamStore().get(checkUpstreamName(name));
      if (!upstream) throw new AdminError(`no upstream ${name} (see upstream list)`);
      await clients.upstreamStore().delete(upstream.name);
      if (upstream.credentials === 'basic') await clients.upstreamCredentials().delete(upstream.name);
      out.line(`Removed upstream ${upstream.name}.`);
      out.note(`Repositories under ${upstream.prefix}/ keep what was cached and are now ordinary, writable repositories.`);
    },
  },
  {
    name: 'upstream test',
    changes: false,
    args: ['<name>'],
    options: ['image'],
    optionsUsage: '[--image PATH[:TAG]]',
    summary: "check from this machine that an upstream answers and takes its credentials (Lambda's network may differ)",
    details: 'Asks /v2/, then HEADs the image (default library/alpine:latest on Docker Hub, else only /v2/).',
    async run({ args: [name], options, clients, out }) {
      const upstream = await clients.upstreamStore().get(checkUpstreamName(name));
      if (!upstream) throw new AdminError(`no upstream ${name} (see upstream list)`);
      const credentials = upstream.credentials === 'basic' ? clients.upstreamCredentials() : undefined;
      const client = new HttpUpstreamClient({ credentials: async () => credentials?.get(upstream.name), logger: silentLogger, circuitMs: 0 });
      try {
        const probe = await client.probe(upstream);
        const challenge = probe.challenge
          ? `${probe.challenge.scheme}${probe.challenge.realmHost ? ` (realm ${probe.challenge.realmHost})` : ''}`
          : 'none';
        out.line(
          `${upstream.url}/v2/ answered in ${probe.reachableMs} ms; challenge: ${challenge}; credentials: ${upstream.credentials === 'basic' ? 'accepted' : 'none configured'}.`,
        );
        const image = options.image ?? (upstream.dockerHub ? 'library/alpine:latest' : undefined);
        if (image) {
          const { path, reference } = splitImage(image);
          const head = await client.headManifest({ upstream, upstreamPath: upstreamPathOf(upstream, path) }, reference);
          out.line(`${path}:${reference} is ${head.digest ?? '(no digest sent)'} (${head.mediaType}).`);
        }
      } catch (error) {
        if (error instanceof UpstreamError) throw new AdminError(error.message);
        throw error;
      }
    },
  },
];

async function addUpstream({ args: [rawName], options, clients, out }: CommandContext): Promise<void> {
  const name = checkUpstreamName(rawName);
  if (!options.url) throw new UsageError('--url <https://host[:port]> is required');
  if (!options.prefix) throw new UsageError('--prefix <prefix> is required, e.g. --prefix docker.io');
  let url: URL;
  try {
    url = parseUpstreamUrl(options.url);
  } catch (error) {
    throw new UsageError(`--url: ${(error as Error).message}`);
  }
  const prefix = options.prefix.replace(/\/+$/, '');
  if (!isValidPrefix(prefix)) throw new UsageError(`--prefix ${prefix}: not a valid repository name (lower case, components separated by /)`);
  if (options['password-stdin'] && !options.username) throw new UsageError('--password-stdin needs --username');
  if (options.username && !options['password-stdin']) throw new UsageError('--username needs --password-stdin (a password is never an argument)');
  const tagTtlSeconds = parseWhole(options['tag-ttl'], '--tag-ttl', 0, MAX_TAG_TTL_SECONDS) ?? DEFAULT_TAG_TTL_SECONDS;
  const keepDays = parseWhole(options['keep-days'], '--keep-days', 1, MAX_KEEP_DAYS);
  const dockerHub = options['docker-hub'] === true || isDockerHubHost(url.host);
  const hosts = options.ns?.length ? [...new Set(options.ns.map((host) => normalizeHost(host)))] : defaultHosts(url, dockerHub);

  const store = clients.upstreamStore();
  const others = (await store.list()).filter((upstream) => upstream.name !== name);
  const existing = (await store.get(name)) ?? undefined;
  if (existing && !options.replace) throw new AdminError(`upstream ${name} exists; --replace changes it`);
  const overlapping = others.find((upstream) => prefixesOverlap(upstream.prefix, prefix));
  if (overlapping) throw new AdminError(`--prefix ${prefix} overlaps upstream ${overlapping.name}'s prefix ${overlapping.prefix}`);
  if (dockerHub) {
    const hub = others.find((upstream) => upstream.dockerHub);
    if (hub) throw new AdminError(`upstream ${hub.name} is already the Docker Hub upstream; there can be one`);
  }
  const sharedHost = others.find((upstream) => upstream.hosts.some((host) => hosts.includes(host)));
  if (sharedHost) throw new AdminError(`upstream ${sharedHost.name} already answers ns=${sharedHost.hosts.find((host) => hosts.includes(host))}`);
  const own = await store.ownRepositoriesUnder(prefix);
  if (own.length > 0) throw new AdminError(`--prefix ${prefix} holds repositories of the registry's own (${own.join(', ')}): pick another prefix`);

  let credentials: UpstreamCredentials | undefined;
  if (options.username) {
    const password = (await out.readStdin()).replace(/\r?\n$/, '');
    if (!password) throw new UsageError('--password-stdin read an empty password');
    credentials = new UpstreamCredentials(options.username, password);
  }
  const now = new Date().toISOString();
  const upstream: Upstream = {
    name,
    url: url.origin,
    prefix,
    hosts,
    dockerHub,
    tagTtlSeconds,
    ...(keepDays === undefined ? {} : { keepDays }),
    credentials: credentials ? 'basic' : 'none',
    credentialsVersion: (existing?.credentialsVersion ?? 0) + 1,
    createdAt: existing?.createdAt ?? now,
    updatedAt: now,
  };
  // Credentials first: an upstream item never names credentials that are not there.
  if (credentials) await clients.upstreamCredentials().put(name, credentials);
  else if (existing?.credentials === 'basic') await clients.upstreamCredentials().delete(name);
  try {
    await store.put(upstream, { replace: options.replace === true });
  } catch (error) {
    if (error instanceof UpstreamExistsError) throw new AdminError(`upstream ${name} exists; --replace changes it`);
    throw error;
  }
  out.line(
    `${existing ? 'Replaced' : 'Added'} upstream ${name}: ${prefix}/<path> pulls <path> from ${upstream.url}${credentials ? ' with credentials' : ''}.`,
  );
  const host = clients.target.registryHost ?? '<registry-host>';
  const example = dockerHub ? 'library/alpine:latest' : 'some/image:tag';
  out.note(`Pull with:     docker pull ${host}/${prefix}/${example}`);
  out.note(`Let a group:   npm run admin -- grant <group> '${prefix}/*' pull`);
  if (dockerHub && !credentials)
    out.note('Docker Hub allows few anonymous pulls per address (Lambda shares addresses): give it --username and --password-stdin.');
}

function checkUpstreamName(name: string | undefined): string {
  if (!name || !isUpstreamName(name)) throw new UsageError(`upstream names are 1 to 32 of a-z, 0-9 and -, not "${name ?? ''}"`);
  return name;
}

function parseWhole(value: string | undefined, option: string, minimum: number, maximum: number): number | undefined {
  if (value === undefined) return undefined;
  const number = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(number) || number < minimum || number > maximum)
    throw new UsageError(`${option} takes a whole number from ${minimum} to ${maximum}, not "${value}"`);
  return number;
}

/** `library/alpine:3.20` or `app@sha256:...` → path and reference (default `latest`). */
function splitImage(image: string): { path: string; reference: string } {
  const at = image.indexOf('@');
  const colon = image.lastIndexOf(':');
  const split = at >= 0 ? at : colon > image.lastIndexOf('/') ? colon : -1;
  const path = split < 0 ? image : image.slice(0, split);
  const reference = split < 0 ? 'latest' : image.slice(split + 1);
  if (!parseReference(reference)) throw new UsageError(`--image ${image}: not PATH[:TAG] or PATH@DIGEST`);
  return { path, reference };
}
