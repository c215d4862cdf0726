/** `token ...`: users' personal access tokens, used as the password instead of theirs (docs/logins.md). */
import { AdminGetUserCommand } from '@aws-sdk/client-cognito-identity-provider';
import { formatGrant } from '../../registry/model/auth/grant-sets.js';
import { MAX_TOKEN_DAYS, describePersonalToken } from '../../registry/services/auth/personal-tokens.js';
import type { AdminClients } from './clients.js';
import { formatTable, type Command } from './command.js';
import { AdminError, UsageError, isAwsError } from './errors.js';
import { parseGrantOptions } from './robot-commands.js';

export const tokenCommands: Command[] = [
  {
    name: 'token create',
    changes: true,
    args: ['<user>'],
    options: ['name', 'expires', 'grant', 'json'],
    optionsUsage: '--name <label> [--expires <days>] [--grant <pattern>:<actions>]... [--json]',
    summary: 'create a personal access token for a user; its secret is shown once',
    details:
      'The user logs in with their own name and the token as the password. The token may do what the user may\n' +
      `(their groups as they are at each login), and with --grant only that much of it. --expires: 1 to ${MAX_TOKEN_DAYS} days; without, it lasts until revoked.\n` +
      "Example: token create alice --name laptop --expires 90 --grant 'team-a/*:pull'",
    async run({ args, options, clients, out }) {
      if (!options.name) throw new UsageError('--name <label> is required: the token is listed and revoked by it');
      const username = await poolUsername(clients, args[0]);
      const expiresDays = options.expires === undefined ? undefined : /^[0-9]+$/.test(options.expires) ? Number(options.expires) : Number.NaN;
      const grants = options.grant === undefined ? undefined : parseGrantOptions(options.grant);
      const result = await clients.personalTokens().create(username, { name: options.name, expiresDays, grants });
      if ('refused' in result) {
        if (result.refused === 'invalid') throw new UsageError(result.problem);
        throw new AdminError(result.problem);
      }
      const summary = describePersonalToken(result.created);
      if (options.json) return out.json({ ...summary, username, secret: result.secret });
      out.line(
        `Created token ${summary.name} (${summary.id}) for ${username}, ${summary.expiresAt ? `valid until ${summary.expiresAt}` : 'without expiry'}.`,
      );
      out.line(`Username: ${username}`);
      out.line(`Token:    ${result.secret}`);
      out.note('The token is shown only this once and cannot be recovered: hand it to the user now.');
      const host = clients.target.registryHost ?? '<registry-host>';
      out.note(`Log in with:  printf '%s' "$TOKEN" | docker login -u '${username}' --password-stdin ${host}`);
    },
  },
  {
    name: 'token list',
    changes: false,
    args: ['<user>'],
    options: ['json'],
    optionsUsage: '[--json]',
    summary: "list a user's personal access tokens (never their secrets)",
    async run({ args, options, clients, out }) {
      const now = Date.now();
      const tokens = (await clients.personalTokens().list(args[0])).map((token) => describePersonalToken(token, now));
      if (options.json) return out.json(tokens);
      const rows = tokens.map((token) => [
        token.name,
        token.id,
        token.status,
        token.createdAt,
        token.expiresAt ?? 'never',
        token.lastUsedAt ?? 'never',
        token.grants ? token.grants.map(formatGrant).join(' ') : "(the user's)",
      ]);
      for (const line of formatTable(['NAME', 'ID', 'STATUS', 'CREATED', 'EXPIRES', 'LAST USED (±1 h)', 'GRANTS'], rows)) out.line(line);
    },
  },
  {
    name: 'token revoke',
    changes: true,
    args: ['<user>', '<name-or-id>'],
    options: [],
    summary: "stop one of a user's personal access tokens from logging in, for good",
    async run({ args: [username, target], clients, out }) {
      const revoked = await clients.personalTokens().revoke(username, target);
      if (!revoked) throw new AdminError(`${username} has no token ${target}`);
      out.line(`Revoked ${username}'s token ${revoked.name} (${revoked.id}): new logins with it are refused.`);
    },
  },
];

/** The user as the pool names them; a disabled user gets no new token. */
async function poolUsername(clients: AdminClients, username: string): Promise<string> {
  const { cognito, userPoolId } = clients.userPool();
  try {
    const user = await cognito.send(new AdminGetUserCommand({ UserPoolId: userPoolId, Username: username }));
    if (user.Enabled === false) throw new AdminError(`user ${username} is disabled`);
    return user.Username ?? username;
  } catch (error) {
    if (isAwsError(error, 'UserNotFoundException')) throw new AdminError(`no user ${username}`);
    throw error;
  }
}
