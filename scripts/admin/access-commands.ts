/** `grant`, `revoke`, `public` and `access list`: the access policy in the registry's table. */
import { ACTIONS, isAction, isValidPattern, type Action, DEFAULT_ADMIN_GROUP } from '../../registry/model/auth/access-model.js';
import type { AdminClients } from './clients.js';
import { formatTable, type Command } from './command.js';
import { AdminError, UsageError } from './errors.js';
import { checkGroupName } from './names.js';
import { listGroups } from './user-commands.js';

/** The admin group's default name (ADMIN_GROUP in registry/config/config.ts); a deployment
 * may name another. Its members hold admin on `*` without any stored grant. */

const PATTERN_HELP = 'a repository (team-a/app), a namespace (team-a/*, any depth) or * (everything)';

export const accessCommands: Command[] = [
  {
    name: 'grant',
    changes: true,
    args: ['<group>', '<pattern>', '<actions>'],
    options: [],
    summary: `give a group actions (${ACTIONS.join(',')}) on repositories; replaces its earlier grant on that pattern`,
    details: `<pattern> is ${PATTERN_HELP}.\n<actions> is a comma list; admin includes pull, push and delete.\nExample: grant team-a 'team-a/*' pull,push`,
    async run({ args: [group, pattern, actionList], clients, out }) {
      checkGroupName(group);
      checkPattern(pattern);
      const actions = parseActions(actionList);
      await requireGroupIfKnown(clients, group);
      await clients.accessStore().grant(group, pattern, actions);
      out.line(`Granted ${actions.join(',')} on ${pattern} to group ${group}.`);
    },
  },
  {
    name: 'revoke',
    changes: true,
    args: ['<group>', '<pattern>'],
    options: [],
    summary: "remove a group's grant on a pattern",
    async run({ args: [group, pattern], clients, out }) {
      checkPattern(pattern);
      const access = clients.accessStore();
      const policy = await access.read();
      if (!policy.groupGrants.some((grant) => grant.group === group && grant.pattern === pattern)) {
        throw new AdminError(`group ${group} has no grant on ${pattern} (see access list)`);
      }
      await access.revoke(group, pattern);
      out.line(`Revoked the grant on ${pattern} from group ${group}.`);
    },
  },
  {
    name: 'public',
    changes: true,
    args: ['<pattern>', 'on|off'],
    options: [],
    summary: 'let anyone pull (on) or no longer (off) from the repositories a pattern matches, without logging in',
    details: `<pattern> is ${PATTERN_HELP}. Anonymous callers never get more than pull.`,
    async run({ args: [pattern, state], clients, out }) {
      checkPattern(pattern);
      if (state !== 'on' && state !== 'off') throw new UsageError(`public takes on or off, not "${state}"`);
      const access = clients.accessStore();
      if (state === 'off' && !(await access.read()).publicPatterns.includes(pattern)) {
        throw new AdminError(`${pattern} is not public (see access list)`);
      }
      await access.setPublic(pattern, state === 'on');
      out.line(state === 'on' ? `Anyone may now pull from ${pattern}.` : `${pattern} is no longer public.`);
    },
  },
  {
    name: 'access list',
    changes: false,
    args: [],
    options: ['json'],
    optionsUsage: '[--json]',
    summary: 'show who may do what: group grants and public patterns',
    async run({ options, clients, out }) {
      const policy = await clients.accessStore().read();
      const groupGrants = [...policy.groupGrants].sort((a, b) => a.group.localeCompare(b.group) || a.pattern.localeCompare(b.pattern));
      const publicPatterns = [...policy.publicPatterns].sort();
      if (options.json) return out.json({ groupGrants, publicPatterns });
      out.line(`Members of the admin group (${DEFAULT_ADMIN_GROUP} unless configured otherwise) may do everything.`);
      out.line();
      if (groupGrants.length === 0) out.line('No group grants.');
      else {
        const rows = groupGrants.map((grant) => [grant.group, grant.pattern, grant.actions.join(',')]);
        for (const line of formatTable(['GROUP', 'PATTERN', 'ACTIONS'], rows)) out.line(line);
      }
      out.line();
      out.line(publicPatterns.length === 0 ? 'Nothing is public.' : `Public (anyone may pull): ${publicPatterns.join(' ')}`);
    },
  },
];

export function checkPattern(pattern: string): string {
  if (!isValidPattern(pattern)) throw new UsageError(`"${pattern}" is not a valid pattern: ${PATTERN_HELP}`);
  return pattern;
}

/** `pull,push` → ['pull', 'push']; unknown or missing actions are usage errors. */
export function parseActions(list: string): Action[] {
  const words = list
    .split(',')
    .map((word) => word.trim())
    .filter(Boolean);
  if (words.length === 0) throw new UsageError(`no actions given: choose from ${ACTIONS.join(',')}`);
  const unknown = words.filter((word) => !isAction(word));
  if (unknown.length > 0) throw new UsageError(`unknown action ${unknown.join(', ')}: choose from ${ACTIONS.join(',')}`);
  return [...new Set(words as Action[])];
}

/** A grant to a group the pool does not have is most likely a typo. Without a user pool (a
 * table-only target) there is nothing to check against. */
async function requireGroupIfKnown(clients: AdminClients, group: string): Promise<void> {
  if (!clients.hasUserPool()) return;
  const groups = await listGroups(clients.userPool());
  if (!groups.some((existing) => existing.GroupName === group)) {
    throw new AdminError(`no group ${group} in the user pool: create it with group create ${group}`);
  }
}
