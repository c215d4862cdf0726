/** `trust ...`: OIDC workload trusts, so that CI jobs log in with their ID token and no stored secret (docs/logins.md). */
import type { Grant } from '../../registry/model/auth/access-model.js';
import { TRUST_PREFIX, isValidTrustName, trustNameOf } from '../../registry/model/auth/account-names.js';
import {
  DEFAULT_TRUST_LIFETIME_SECONDS,
  MAX_TRUST_LIFETIME_SECONDS,
  MIN_TRUST_LIFETIME_SECONDS,
  TRUST_ACTIONS,
  issuerUrlProblem,
  type ClaimCondition,
  type WorkloadTrust,
} from '../../registry/model/auth/workload-trust.js';
import { formatTable, type Command } from './command.js';
import { AdminError, UsageError } from './errors.js';
import { parseRobotGrants } from './robot-commands.js';

export const trustCommands: Command[] = [
  {
    name: 'trust add',
    changes: true,
    args: ['<name>'],
    options: ['issuer', 'audience', 'claim', 'grant', 'max-lifetime', 'json'],
    optionsUsage:
      '--issuer <https://...> --audience <aud> --claim <claim>=<value> [--claim ...] --grant <pattern>:<actions> [--grant ...] [--max-lifetime <seconds>] [--json]',
    summary: 'let CI jobs whose OIDC ID token matches log in, with no stored secret',
    details:
      `A job logs in as ${TRUST_PREFIX}<name> with its ID token as the password; the token must come from --issuer, name --audience,\n` +
      'and meet every --claim (exact, or a glob where the value holds *: refs/heads/*). At least one --claim is required:\n' +
      'without one, every job of the issuer (every GitHub repository in the world) would qualify.\n' +
      `--grant: as for robots, actions ${TRUST_ACTIONS.join(',')} (never admin).\n` +
      `--max-lifetime: seconds a registry token may live, ${MIN_TRUST_LIFETIME_SECONDS} to ${MAX_TRUST_LIFETIME_SECONDS} (default ${DEFAULT_TRUST_LIFETIME_SECONDS}); never past the ID token's expiry.\n` +
      "Example: trust add gh-app --issuer https://token.actions.githubusercontent.com --audience registry.example.com --claim repository=org/app --claim 'ref=refs/heads/main' --grant 'ci/app/*:pull,push'",
    async run({ args, options, clients, out }) {
      const name = checkTrustName(args[0]);
      const trust: WorkloadTrust = {
        name,
        issuer: checkIssuer(options.issuer, clients.isLocal()),
        audience: required(options.audience, '--audience <aud> is required: the audience the job asks its ID token for'),
        claims: parseClaims(options.claim ?? []),
        grants: parseTrustGrants(options.grant ?? []),
        maxLifetimeSeconds: parseLifetime(options['max-lifetime']),
        createdAt: Date.now(),
      };
      if (!(await clients.trustStore().add(trust))) throw new AdminError(`trust ${name} exists already (trust remove ${name} first to change it)`);
      if (options.json) return out.json({ username: `${TRUST_PREFIX}${name}`, ...trust });
      out.line(`Added trust ${name}: jobs log in as ${TRUST_PREFIX}${name} with their ID token as the password.`);
      const host = clients.target.registryHost ?? '<registry-host>';
      out.note(`Log in from the job with:  printf '%s' "$ID_TOKEN" | docker login -u '${TRUST_PREFIX}${name}' --password-stdin ${host}`);
    },
  },
  {
    name: 'trust list',
    changes: false,
    args: [],
    options: ['json'],
    optionsUsage: '[--json]',
    summary: 'list OIDC workload trusts',
    async run({ options, clients, out }) {
      const trusts = (await clients.trustStore().list()).sort((a, b) => a.name.localeCompare(b.name));
      if (options.json) return out.json(trusts.map((trust) => ({ username: `${TRUST_PREFIX}${trust.name}`, ...trust })));
      const rows = trusts.map((trust) => [
        `${TRUST_PREFIX}${trust.name}`,
        trust.issuer,
        trust.audience,
        trust.claims.map(({ claim, value }) => `${claim}=${value}`).join(' '),
        trust.grants.map(formatGrant).join(' '),
        String(trust.maxLifetimeSeconds),
      ]);
      for (const line of formatTable(['USERNAME', 'ISSUER', 'AUDIENCE', 'CLAIMS', 'GRANTS', 'MAX LIFETIME'], rows)) out.line(line);
    },
  },
  {
    name: 'trust remove',
    changes: true,
    args: ['<name>'],
    options: [],
    summary: 'stop a trust from letting jobs log in (within 5 seconds; tokens issued live out their minutes)',
    async run({ args, clients, out }) {
      const name = checkTrustName(args[0]);
      if (!(await clients.trustStore().remove(name))) throw new AdminError(`no trust ${name}`);
      out.line(`Removed trust ${name}: new logins as ${TRUST_PREFIX}${name} are refused.`);
    },
  },
];

/** Accepts the bare name or the `trust$<name>` username. */
function checkTrustName(name: string): string {
  const bare = trustNameOf(name) ?? name;
  if (!isValidTrustName(bare)) {
    throw new UsageError(`"${bare}" is not a valid trust name: lowercase letters, digits and . _ -, starting with a letter or digit, at most 64`);
  }
  return bare;
}

function required(value: string | undefined, message: string): string {
  if (!value) throw new UsageError(message);
  return value;
}

function checkIssuer(value: string | undefined, local: boolean): string {
  const issuer = required(value, '--issuer <https://...> is required: the iss of the ID tokens, e.g. https://token.actions.githubusercontent.com');
  const problem = issuerUrlProblem(issuer, local);
  if (problem) throw new UsageError(`--issuer ${issuer} ${problem}`);
  return issuer;
}

/** `repository=org/app` → a condition; the first `=` separates (claim names have none). */
function parseClaims(values: string[]): ClaimCondition[] {
  if (values.length === 0) throw new UsageError('a trust needs at least one --claim <claim>=<value>, e.g. --claim repository=org/app');
  return values.map((value) => {
    const equals = value.indexOf('=');
    if (equals <= 0 || equals === value.length - 1) throw new UsageError(`--claim ${value}: expected <claim>=<value>, e.g. 'ref=refs/heads/main'`);
    const claim = value.slice(0, equals);
    const expected = value.slice(equals + 1);
    if (/^\*+$/.test(expected)) throw new UsageError(`--claim ${value}: a value of only * matches every job; name what to match`);
    return { claim, value: expected };
  });
}

function parseTrustGrants(values: string[]): Grant[] {
  const grants = parseRobotGrants(values, 'a trust');
  const admin = grants.find((grant) => grant.actions.some((action) => !TRUST_ACTIONS.includes(action)));
  if (admin) throw new UsageError(`--grant ${formatGrant(admin)}: a trust grants ${TRUST_ACTIONS.join(', ')}, never admin`);
  return grants;
}

function parseLifetime(value: string | undefined): number {
  if (value === undefined) return DEFAULT_TRUST_LIFETIME_SECONDS;
  const seconds = /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(seconds) || seconds < MIN_TRUST_LIFETIME_SECONDS || seconds > MAX_TRUST_LIFETIME_SECONDS) {
    throw new UsageError(`--max-lifetime takes seconds from ${MIN_TRUST_LIFETIME_SECONDS} to ${MAX_TRUST_LIFETIME_SECONDS}, not "${value}"`);
  }
  return seconds;
}

function formatGrant(grant: Grant): string {
  return `${grant.pattern}:${grant.actions.join(',')}`;
}
