/**
 * `npm run policy -- <target> <command>`: retention policies and immutable tags, stored as data
 * in the registry's table, so that changing them needs no redeploy (docs/policies.md).
 *
 *   retention set <pattern> [--keep-last N] [--keep-matching RE] [--only-matching RE]
 *                           [--delete-older-than DAYS] [--untagged keep|delete]
 *   retention list | retention remove <pattern>
 *   retention dry-run | retention apply   [--repository NAME]... [--json]
 *   immutable add <pattern> [--exclude GLOB_OR_RE]... | immutable list | immutable remove <pattern>
 *
 * Target: --local [--data-dir DIR] (the registry `npm start` runs), or
 * --table NAME [--region R], or --stack NAME [--region R].
 */
import './local/quiet-sdk-warning.js';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { applyRetention, type RetentionReport } from '../registry/services/policies/apply-retention.js';
import type { ImmutableRule } from '../registry/model/policies/immutability.js';
import type { Logger } from '../registry/support/logger.js';
import { retentionRuleProblem, type RetentionRule } from '../registry/model/policies/retention.js';
import { exclusionProblem, isValidRepositoryPattern, wholeTagRegex } from '../registry/model/policies/tag-patterns.js';
import { BlobIndex } from '../registry/storage/blob-index.js';
import { BlobObjectStore } from '../registry/storage/blob-object-store.js';
import { ManifestStore } from '../registry/storage/manifest-store.js';
import { PolicyStore } from '../registry/storage/policy-store.js';
import { AdminError, EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, describeError } from './admin/errors.js';
import { resolveTarget, type AdminTarget } from './admin/targets.js';
import { recordAdminChange } from './admin/audit-commands.js';
import { auditLogFor, type AuditLog } from '../registry/services/audit/audit-log.js';
import { auditConfig } from '../registry/config/config.js';
import { jsonLogger } from '../registry/support/logger.js';

export const USAGE = `Usage: npm run policy -- <target> <command>

Retention (which tags and manifests a run deletes):
  retention set <pattern> [--keep-last N] [--keep-matching RE] [--only-matching RE]
                          [--delete-older-than DAYS] [--untagged keep|delete]
  retention list
  retention remove <pattern>
  retention dry-run [--repository NAME]... [--json]    what a run would delete now
  retention apply   [--repository NAME]... [--json]    delete it

Immutable tags (a pushed tag keeps its digest and cannot be deleted):
  immutable add <pattern> [--exclude GLOB_OR_RE]...    e.g. --exclude latest --exclude 'dev-*'
  immutable list
  immutable remove <pattern>

<pattern>: a repository (team/app), everything below a namespace (team/*), or everything (*).
RE: a regular expression matched against the whole tag (v.* matches v1.2, not dev1).

Target:
  --local [--data-dir DIR]              the registry npm start is running (data dir: --data-dir,
                                        else REGISTRY_DATA_DIR, else .registry-data)
  --table NAME [--region R]             a deployed registry's table
  --stack NAME [--region R]             a deployed stack

list, dry-run and apply take --json for scripts.

Examples:
  npm run policy -- --local retention set 'team-a/*' --only-matching 'v.*' --keep-last 10 --untagged delete
  npm run policy -- --local retention dry-run --json | jq .totals
  npm run policy -- --stack oci-registry immutable add 'prod/*' --exclude latest

Exit codes: 0 done, 1 refused or failed (the reason on stderr, one line), 2 wrong command line.
See docs/policies.md.`;

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

const consoleIo: CliIo = { out: (line) => console.log(line), err: (line) => console.error(line) };

const OPTIONS = {
  local: { type: 'boolean' },
  'data-dir': { type: 'string' },
  table: { type: 'string' },
  'table-name': { type: 'string' },
  stack: { type: 'string' },
  region: { type: 'string' },
  'keep-last': { type: 'string' },
  'keep-matching': { type: 'string' },
  'only-matching': { type: 'string' },
  'delete-older-than': { type: 'string' },
  untagged: { type: 'string' },
  exclude: { type: 'string', multiple: true },
  repository: { type: 'string', multiple: true },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Flags = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

/** Runs one command; answers the exit code. Never throws. */
export async function runPolicyCli(argv: readonly string[], io: CliIo = consoleIo): Promise<number> {
  let stores: Stores | undefined;
  try {
    const { values: flags, positionals } = parseCommandLine(argv);
    if (flags.help || positionals.length === 0) {
      io.out(USAGE);
      return positionals.length === 0 && !flags.help ? EXIT_USAGE : EXIT_OK;
    }
    const [area, command, ...rest] = positionals;
    const run = commandFor(area!, command, rest, flags);
    stores = await openStores(flags, io);
    if (!POLICY_CHANGES.includes(`${area} ${command}`)) return await run(stores, io);
    const audit = stores.audit;
    const name = `${area} ${command}`;
    const code = await run(stores, io).catch(async (error: unknown) => {
      await recordAdminChange(audit, name, rest, error);
      throw error;
    });
    await recordAdminChange(audit, name, rest);
    return code;
  } catch (error) {
    io.err(`error: ${describeError(error)}`);
    if (error instanceof UsageError) {
      io.err('Run with --help for usage.');
      return EXIT_USAGE;
    }
    return EXIT_FAILED;
  } finally {
    stores?.destroy();
  }
}

function parseCommandLine(argv: readonly string[]) {
  try {
    return parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

type Command = (stores: Stores, io: CliIo) => Promise<number>;

/** The commands that change policies or delete, recorded in the audit log (docs/audit-log.md). */
const POLICY_CHANGES = ['retention set', 'retention remove', 'retention apply', 'immutable add', 'immutable remove'];

/** Checks the command line completely before anything is read or written. */
function commandFor(area: string, command: string | undefined, rest: string[], flags: Flags): Command {
  const only = (allowed: (keyof Flags)[]) => {
    const target: (keyof Flags)[] = ['local', 'data-dir', 'table', 'table-name', 'stack', 'region', 'help'];
    const extra = (Object.keys(flags) as (keyof Flags)[]).filter((flag) => flags[flag] !== undefined && ![...target, ...allowed].includes(flag));
    if (extra.length > 0) throw new UsageError(`${area} ${command} does not take --${extra.join(', --')}`);
  };
  const arguments_ = (count: number) => {
    if (rest.length !== count) {
      throw new UsageError(count === 0 ? `${area} ${command} takes no arguments` : `${area} ${command} takes a repository pattern`);
    }
    if (count === 1) checkPattern(rest[0]!);
    return rest;
  };
  if (area === 'retention') {
    switch (command) {
      case 'set': {
        only(['keep-last', 'keep-matching', 'only-matching', 'delete-older-than', 'untagged']);
        const [pattern] = arguments_(1);
        const rule = retentionRuleFrom(pattern!, flags);
        return (stores, io) => setRetention(stores, io, rule);
      }
      case 'list':
        only(['json']);
        arguments_(0);
        return (stores, io) => listRetention(stores, io, flags.json === true);
      case 'remove': {
        only([]);
        const [pattern] = arguments_(1);
        return async (stores, io) => {
          if (!(await stores.policies.removeRetentionRule(pattern!))) throw new AdminError(`no retention policy for ${pattern}`);
          io.out(`Removed the retention policy for ${pattern}.`);
          return EXIT_OK;
        };
      }
      case 'dry-run':
      case 'apply': {
        only(['repository', 'json']);
        arguments_(0);
        for (const repository of flags.repository ?? []) checkPattern(repository);
        return (stores, io) => runRetention(stores, io, { dryRun: command === 'dry-run', repositories: flags.repository, json: flags.json === true });
      }
    }
    throw new UsageError(`unknown retention command ${JSON.stringify(command ?? '')}: set, list, remove, dry-run or apply`);
  }
  if (area === 'immutable') {
    switch (command) {
      case 'add': {
        only(['exclude']);
        const [pattern] = arguments_(1);
        const excludes = flags.exclude ?? [];
        for (const exclusion of excludes) {
          const problem = exclusionProblem(exclusion);
          if (problem) throw new UsageError(`--exclude ${exclusion}: ${problem}`);
        }
        return async (stores, io) => {
          const rule: ImmutableRule = { pattern: pattern!, excludes: [...new Set(excludes)] };
          await stores.policies.putImmutableRule(rule);
          io.out(`Tags of ${describePattern(pattern!)} are immutable${excludes.length ? `, except ${rule.excludes.join(', ')}` : ''}.`);
          return EXIT_OK;
        };
      }
      case 'list':
        only(['json']);
        arguments_(0);
        return (stores, io) => listImmutable(stores, io, flags.json === true);
      case 'remove': {
        only([]);
        const [pattern] = arguments_(1);
        return async (stores, io) => {
          if (!(await stores.policies.removeImmutableRule(pattern!))) throw new AdminError(`no immutable rule for ${pattern}`);
          io.out(`Tags of ${describePattern(pattern!)} are mutable again (unless another rule covers them).`);
          return EXIT_OK;
        };
      }
    }
    throw new UsageError(`unknown immutable command ${JSON.stringify(command ?? '')}: add, list or remove`);
  }
  throw new UsageError(`unknown command ${JSON.stringify(area)}: retention or immutable`);
}

function checkPattern(pattern: string): void {
  if (!isValidRepositoryPattern(pattern)) {
    throw new UsageError(`${JSON.stringify(pattern)} is not a repository pattern: use team/app, team/* or *`);
  }
}

function describePattern(pattern: string): string {
  if (pattern === '*') return 'every repository';
  if (pattern.endsWith('/*')) return `every repository below ${pattern.slice(0, -1)}`;
  return pattern;
}

function retentionRuleFrom(pattern: string, flags: Flags): RetentionRule {
  const number = (flag: 'keep-last' | 'delete-older-than') => {
    const raw = flags[flag];
    if (raw === undefined) return undefined;
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value)) throw new UsageError(`--${flag} takes a number, not ${JSON.stringify(raw)}`);
    return value;
  };
  const untagged = flags.untagged ?? 'keep';
  if (untagged !== 'keep' && untagged !== 'delete') throw new UsageError(`--untagged takes keep or delete, not ${JSON.stringify(untagged)}`);
  const rule: RetentionRule = {
    pattern,
    keepLast: number('keep-last'),
    keepMatching: flags['keep-matching'],
    onlyMatching: flags['only-matching'],
    deleteOlderThanDays: number('delete-older-than'),
    untagged,
  };
  const problem = retentionRuleProblem(rule);
  if (problem) throw new UsageError(problem);
  return rule;
}

/** Regexes that match the empty tag are almost always globs written by mistake (`v*`). */
function globWarnings(rule: RetentionRule): string[] {
  const warnings: string[] = [];
  for (const [flag, expression] of [
    ['--keep-matching', rule.keepMatching],
    ['--only-matching', rule.onlyMatching],
  ] as const) {
    if (expression !== undefined && wholeTagRegex(expression)('') && expression !== '.*') {
      warnings.push(
        `warning: ${flag} ${expression} is a regular expression matched against the whole tag, and it matches an empty tag; ` +
          `for "tags starting with v" write v.*`,
      );
    }
  }
  return warnings;
}

export function describeRetentionRule(rule: RetentionRule): string {
  const parts: string[] = [];
  if (rule.onlyMatching !== undefined) parts.push(`only tags matching ${rule.onlyMatching}`);
  if (rule.keepMatching !== undefined) parts.push(`always keep tags matching ${rule.keepMatching}`);
  if (rule.keepLast !== undefined) parts.push(`keep the ${rule.keepLast} most recently pushed`);
  if (rule.deleteOlderThanDays !== undefined) {
    parts.push(`${rule.keepLast !== undefined ? 'and ' : 'keep '}anything pushed in the last ${rule.deleteOlderThanDays} day(s)`);
  }
  if (rule.keepLast === undefined && rule.deleteOlderThanDays === undefined) parts.push('delete no tags');
  parts.push(`${rule.untagged} untagged manifests`);
  return parts.join('; ');
}

async function setRetention(stores: Stores, io: CliIo, rule: RetentionRule): Promise<number> {
  for (const warning of globWarnings(rule)) io.err(warning);
  await stores.policies.putRetentionRule(rule);
  io.out(`Retention for ${describePattern(rule.pattern)}: ${describeRetentionRule(rule)}.`);
  io.out('Nothing is deleted until a retention run (retention apply, or the scheduled maintenance); retention dry-run shows what would go.');
  return EXIT_OK;
}

async function listRetention(stores: Stores, io: CliIo, json: boolean): Promise<number> {
  const rules = (await stores.policies.retentionRules()).sort((a, b) => (a.pattern < b.pattern ? -1 : 1));
  if (json) {
    io.out(JSON.stringify(rules, null, 2));
    return EXIT_OK;
  }
  if (rules.length === 0) io.out('No retention policies.');
  for (const rule of rules) io.out(`${rule.pattern}\t${describeRetentionRule(rule)}`);
  return EXIT_OK;
}

async function listImmutable(stores: Stores, io: CliIo, json: boolean): Promise<number> {
  const rules = (await stores.policies.immutableRules()).sort((a, b) => (a.pattern < b.pattern ? -1 : 1));
  if (json) {
    io.out(JSON.stringify(rules, null, 2));
    return EXIT_OK;
  }
  if (rules.length === 0) io.out('No immutable tag rules.');
  for (const rule of rules) io.out(`${rule.pattern}\t${rule.excludes.length ? `except ${rule.excludes.join(', ')}` : 'every tag'}`);
  return EXIT_OK;
}

async function runRetention(stores: Stores, io: CliIo, options: { dryRun: boolean; repositories?: string[]; json: boolean }): Promise<number> {
  // Progress on stderr, one line per tag deleted and per problem, so a long run shows it is moving.
  const progress = (line: string) => io.err(`policy: ${line}`);
  const logger: Logger = {
    info: (message, fields = {}) => {
      if (message === 'retention deleted a tag') progress(`deleted ${fields.repository}:${fields.tag} (${fields.reason})`);
    },
    warn: (message, fields = {}) => progress(`${message} ${JSON.stringify(fields)}`),
    error: (message, fields = {}) => progress(`${message} ${JSON.stringify(fields)}`),
  };
  const report = await applyRetention(stores, { dryRun: options.dryRun, repositories: options.repositories, logger });
  if (options.json) io.out(JSON.stringify(report, null, 2));
  else printReport(report, io);
  return report.totals.errors > 0 ? EXIT_FAILED : EXIT_OK;
}

function printReport(report: RetentionReport, io: CliIo): void {
  if (report.rules.length === 0) {
    io.out('No retention policies: nothing to do.');
    return;
  }
  const verb = report.dryRun ? 'would delete' : 'deleted';
  for (const repository of report.repositories) {
    if (repository.error) {
      io.out(`${repository.repository} (rule ${repository.rule}): FAILED: ${repository.error}`);
      continue;
    }
    if (repository.tags.length === 0 && repository.manifests.length === 0) continue;
    io.out(`${repository.repository} (rule ${repository.rule}): keeps ${repository.keptTags} tag(s) and ${repository.keptManifests} manifest(s)`);
    for (const tag of repository.tags) {
      io.out(`  ${outcomeLabel(tag.outcome, verb)} tag ${tag.tag} (${shortDigest(tag.digest)}, pushed ${tag.pushedAt}): ${tag.reason}`);
    }
    for (const manifest of repository.manifests) {
      const why =
        manifest.reason === 'tags-removed'
          ? 'its tags are removed'
          : manifest.reason === 'untagged'
            ? 'untagged'
            : `goes with ${manifest.owners.map(shortDigest).join(', ')}`;
      io.out(`  ${outcomeLabel(manifest.outcome, verb)} manifest ${manifest.digest}: ${why}`);
    }
  }
  const { totals } = report;
  const deletedTags = report.dryRun ? totals.tagsWouldDelete : totals.tagsDeleted;
  const deletedManifests = report.dryRun ? totals.manifestsWouldDelete : totals.manifestsDeleted;
  io.out(
    `${report.dryRun ? 'Dry run: would delete' : 'Deleted'} ${deletedTags} tag(s) and ${deletedManifests} manifest(s) in ${totals.repositories} repositor${totals.repositories === 1 ? 'y' : 'ies'} with a policy` +
      (totals.skipped ? `; ${totals.skipped} left in place because a push changed them during the run` : '') +
      (totals.errors ? `; ${totals.errors} repositor${totals.errors === 1 ? 'y' : 'ies'} failed` : '') +
      '.',
  );
  if (!report.dryRun && deletedManifests > 0) io.out('Their blobs are freed by the next garbage collection.');
}

function outcomeLabel(outcome: string, verb: string): string {
  if (outcome === 'deleted' || outcome === 'would-delete') return verb;
  if (outcome === 'changed') return 'kept (pushed during the run)';
  return 'kept (what it belongs to stayed)';
}

function shortDigest(digest: string): string {
  return digest.length > 19 ? `${digest.slice(0, 19)}…` : digest;
}

// ---------------------------------------------------------------------------------------------

interface Stores {
  policies: PolicyStore;
  audit: AuditLog;
  manifests: ManifestStore;
  destroy(): void;
}

async function openStores(flags: Flags, io: CliIo): Promise<Stores> {
  if (flags.table !== undefined && flags['table-name'] !== undefined) throw new UsageError('give --table or --table-name, not both');
  if (!flags.local && flags.table === undefined && flags['table-name'] === undefined && flags.stack === undefined) {
    throw new UsageError('say which registry: --local [--data-dir DIR], --table NAME [--region R], or --stack NAME [--region R]');
  }
  const target: AdminTarget = await resolveTarget({
    local: flags.local,
    'data-dir': flags['data-dir'],
    stack: flags.stack,
    region: flags.region,
    'table-name': flags.table ?? flags['table-name'],
  });
  if (!target.tableName) throw new AdminError(`no table for ${target.description}: give --table`);
  const dynamo = new DynamoDBClient({ region: target.region, endpoint: target.dynamoEndpoint, credentials: target.credentials });
  const documents = DynamoDBDocumentClient.from(dynamo, { marshallOptions: { removeUndefinedValues: true } });
  // Retention reads and deletes table items only; the object store is never called (large
  // manifests' S3 objects are left to garbage collection), so it needs no real bucket.
  const s3 = new S3Client({ region: target.region ?? 'us-east-1', credentials: target.credentials });
  return {
    policies: new PolicyStore(documents, target.tableName),
    audit: auditLogFor(
      { tableName: target.tableName, audit: auditConfig() },
      { dynamo: documents },
      jsonLogger((line) => io.err(line)),
    ),
    manifests: new ManifestStore(
      documents,
      target.tableName,
      new BlobObjectStore(s3, 'unused-by-retention'),
      new BlobIndex(documents, target.tableName),
    ),
    destroy: () => {
      documents.destroy();
      s3.destroy();
    },
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await runPolicyCli(process.argv.slice(2));
}
