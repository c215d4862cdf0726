/** `user ...` and `group ...`: team logins and their groups, in the Cognito user pool. */
import {
  AdminAddUserToGroupCommand,
  AdminCreateUserCommand,
  AdminDeleteUserCommand,
  AdminDisableUserCommand,
  AdminEnableUserCommand,
  AdminListGroupsForUserCommand,
  AdminRemoveUserFromGroupCommand,
  AdminSetUserPasswordCommand,
  AdminUserGlobalSignOutCommand,
  CreateGroupCommand,
  ListGroupsCommand,
  ListUsersCommand,
  type GroupType,
  type UserType,
} from '@aws-sdk/client-cognito-identity-provider';
import type { AdminClients, UserPool } from './clients.js';
import { formatTable, type Command, type Output } from './command.js';
import { AdminError, isAwsError } from './errors.js';
import { checkGroupName, checkUsername } from './names.js';
import { choosePassword } from './passwords.js';

export const userCommands: Command[] = [
  {
    name: 'user create',
    changes: true,
    args: ['<name>'],
    options: ['password', 'password-stdin', 'group'],
    optionsUsage: '[--password P | --password-stdin] [--group G]...',
    summary: 'create a login; without a password one is generated and shown once',
    details: 'The user can log in at once (the password is permanent) and is put in each --group, which must exist.',
    async run({ args, options, clients, out }) {
      const username = checkUsername(args[0]);
      const groups = (options.group ?? []).map(checkGroupName);
      const pool = clients.userPool();
      const { password, generated } = await choosePassword(options, out);
      await requireGroups(pool, groups);
      await createUser(pool, username, password, groups);
      out.line(`Created user ${username}${groups.length ? ` in ${groups.join(', ')}` : ''}.`);
      if (generated) showPasswordOnce(out, password);
    },
  },
  {
    name: 'user disable',
    changes: true,
    args: ['<name>'],
    options: [],
    summary: 'stop a user from logging in, stored logins and personal access tokens included (the user and its groups are kept)',
    async run({ args, clients, out }) {
      const { cognito, userPoolId } = clients.userPool();
      await endingSessions(clients, args[0], () => cognito.send(new AdminDisableUserCommand({ UserPoolId: userPoolId, Username: args[0] })));
      // Refused at once while disabled (each login asks the pool); revoked so that enabling the user does not bring them back.
      const tokens = await clients.personalTokens().revokeAll(args[0]);
      out.line(`Disabled user ${args[0]}: new logins are refused, and stored ones and ${tokens} personal token(s) too even once enabled again.`);
    },
  },
  {
    name: 'user enable',
    changes: true,
    args: ['<name>'],
    options: [],
    summary: 'let a disabled user log in again',
    async run({ args, clients, out }) {
      const { cognito, userPoolId } = clients.userPool();
      await onUser(args[0], () => cognito.send(new AdminEnableUserCommand({ UserPoolId: userPoolId, Username: args[0] })));
      out.line(`Enabled user ${args[0]}.`);
    },
  },
  {
    name: 'user set-password',
    changes: true,
    args: ['<name>'],
    options: ['password', 'password-stdin', 'revoke-tokens'],
    optionsUsage: '[--password P | --password-stdin] [--revoke-tokens]',
    summary: 'set a new permanent password; without one it is generated and shown once. Signs the user out everywhere',
    details:
      '--revoke-tokens: revoke all their personal access tokens too (when the password may have leaked with them);\n' +
      'without, they keep working: a token is a credential of its own, made to outlive password changes.',
    async run({ args, options, clients, out }) {
      const { cognito, userPoolId } = clients.userPool();
      const { password, generated } = await choosePassword(options, out);
      await endingSessions(clients, args[0], () =>
        cognito.send(new AdminSetUserPasswordCommand({ UserPoolId: userPoolId, Username: args[0], Password: password, Permanent: true })),
      );
      const revoked = options['revoke-tokens'] ? `, nor ${await clients.personalTokens().revokeAll(args[0])} personal token(s)` : '';
      out.line(`Set a new password for ${args[0]}; stored logins (refresh tokens)${revoked} no longer work.`);
      if (generated) showPasswordOnce(out, password);
    },
  },
  {
    name: 'user sign-out',
    changes: true,
    args: ['<name>'],
    options: [],
    summary: "sign a user out everywhere: every stored login (docker's refresh token) stops working at once",
    details: 'Access tokens already issued run out within their few minutes. The password stays as it is.',
    async run({ args, clients, out }) {
      const { cognito, userPoolId } = clients.userPool();
      await endingSessions(clients, args[0], () => cognito.send(new AdminUserGlobalSignOutCommand({ UserPoolId: userPoolId, Username: args[0] })));
      out.line(`Signed ${args[0]} out everywhere: stored logins must give the password again.`);
    },
  },
  {
    name: 'user list',
    changes: false,
    args: [],
    options: ['json'],
    optionsUsage: '[--json]',
    summary: 'list the users',
    async run({ options, clients, out }) {
      const users = (await listUsers(clients.userPool())).map(describeUser);
      if (options.json) return out.json(users);
      const rows = users.map((user) => [user.username, user.enabled ? 'yes' : 'no', user.status, user.created ?? '']);
      for (const line of formatTable(['USERNAME', 'ENABLED', 'STATUS', 'CREATED'], rows)) out.line(line);
    },
  },
  {
    name: 'user groups',
    changes: false,
    args: ['<name>'],
    options: ['json'],
    optionsUsage: '[--json]',
    summary: "list a user's groups",
    async run({ args, options, clients, out }) {
      const groups = await onUser(args[0], () => groupsOfUser(clients.userPool(), args[0]));
      if (options.json) return out.json(groups);
      for (const group of groups) out.line(group);
    },
  },
];

export const groupCommands: Command[] = [
  {
    name: 'group create',
    changes: true,
    args: ['<name>'],
    options: ['description'],
    optionsUsage: '[--description D]',
    summary: 'create a group; give it permissions with grant',
    async run({ args, options, clients, out }) {
      const group = checkGroupName(args[0]);
      const { cognito, userPoolId } = clients.userPool();
      try {
        await cognito.send(new CreateGroupCommand({ UserPoolId: userPoolId, GroupName: group, Description: options.description }));
      } catch (error) {
        if (isAwsError(error, 'GroupExistsException')) throw new AdminError(`group ${group} exists already`);
        throw error;
      }
      out.line(`Created group ${group}. Give it permissions with: grant ${group} <pattern> <actions>`);
    },
  },
  {
    name: 'group add-user',
    changes: true,
    args: ['<group>', '<user>'],
    options: [],
    summary: 'put a user in a group (effective at its next login)',
    async run({ args: [group, username], clients, out }) {
      const pool = clients.userPool();
      await requireGroups(pool, [group]);
      await onUser(username, () =>
        pool.cognito.send(new AdminAddUserToGroupCommand({ UserPoolId: pool.userPoolId, GroupName: group, Username: username })),
      );
      out.line(`Added ${username} to ${group}.`);
    },
  },
  {
    name: 'group remove-user',
    changes: true,
    args: ['<group>', '<user>'],
    options: [],
    summary: 'take a user out of a group (effective at its next token); signs the user out everywhere',
    async run({ args: [group, username], clients, out }) {
      const pool = clients.userPool();
      await requireGroups(pool, [group]);
      await endingSessions(clients, username, () =>
        pool.cognito.send(new AdminRemoveUserFromGroupCommand({ UserPoolId: pool.userPoolId, GroupName: group, Username: username })),
      );
      out.line(`Removed ${username} from ${group}; stored logins (refresh tokens) no longer work.`);
    },
  },
  {
    name: 'group list',
    changes: false,
    args: [],
    options: ['json'],
    optionsUsage: '[--json]',
    summary: 'list the groups',
    async run({ options, clients, out }) {
      const groups = (await listGroups(clients.userPool())).map((group) => ({
        name: group.GroupName ?? '',
        description: group.Description ?? '',
      }));
      if (options.json) return out.json(groups);
      for (const line of formatTable(
        ['GROUP', 'DESCRIPTION'],
        groups.map((group) => [group.name, group.description]),
      ))
        out.line(line);
    },
  },
];

function showPasswordOnce(out: Output, password: string): void {
  out.line(`Password: ${password}`);
  out.note('The password is shown only this once.');
}

/** Creates a confirmed user with a permanent password; removes it again if a later step fails,
 * so that a retry does not meet a half-made user. */
async function createUser({ cognito, userPoolId }: UserPool, username: string, password: string, groups: string[]) {
  try {
    // SUPPRESS: no invitation message; the admin hands the password over.
    await cognito.send(new AdminCreateUserCommand({ UserPoolId: userPoolId, Username: username, MessageAction: 'SUPPRESS' }));
  } catch (error) {
    if (isAwsError(error, 'UsernameExistsException')) throw new AdminError(`user ${username} exists already`);
    throw error;
  }
  try {
    await cognito.send(new AdminSetUserPasswordCommand({ UserPoolId: userPoolId, Username: username, Password: password, Permanent: true }));
    for (const group of groups) {
      await cognito.send(new AdminAddUserToGroupCommand({ UserPoolId: userPoolId, Username: username, GroupName: group }));
    }
  } catch (error) {
    await cognito.send(new AdminDeleteUserCommand({ UserPoolId: userPoolId, Username: username })).catch(() => undefined);
    if (isAwsError(error, 'InvalidPasswordException')) throw new AdminError(`password refused: ${(error as Error).message}`);
    throw error;
  }
}

/** Runs a call on a named user, turning "no such user" into a plain message. */
async function onUser<T>(username: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (isAwsError(error, 'UserNotFoundException')) throw new AdminError(`no user ${username}`);
    if (isAwsError(error, 'InvalidPasswordException')) throw new AdminError(`password refused: ${(error as Error).message}`);
    throw error;
  }
}

/**
 * Runs a change to a user that must end its sessions, then ends them (docs/logins.md): every
 * refresh token issued before names an older session generation and is refused. In this order
 * because the token endpoint reads the generation before it checks a password: a login racing
 * the change either sees the new generation or gets a token the bump voids. The table is
 * required before anything changes, so that a user is never changed without being signed out.
 */
async function endingSessions<T>(clients: AdminClients, username: string, change: () => Promise<T>): Promise<T> {
  const sessions = clients.loginStates();
  const result = await onUser(username, change);
  await sessions.signOut(username);
  return result;
}

async function requireGroups(pool: UserPool, groups: string[]): Promise<void> {
  if (groups.length === 0) return;
  const existing = new Set((await listGroups(pool)).map((group) => group.GroupName));
  const missing = groups.filter((group) => !existing.has(group));
  if (missing.length > 0) throw new AdminError(`no group ${missing.join(', ')}: create it with group create`);
}

export async function listGroups({ cognito, userPoolId }: UserPool): Promise<GroupType[]> {
  const groups: GroupType[] = [];
  let nextToken: string | undefined;
  do {
    const page = await cognito.send(new ListGroupsCommand({ UserPoolId: userPoolId, NextToken: nextToken }));
    groups.push(...(page.Groups ?? []));
    nextToken = page.NextToken;
  } while (nextToken);
  return groups;
}

async function listUsers({ cognito, userPoolId }: UserPool): Promise<UserType[]> {
  const users: UserType[] = [];
  let paginationToken: string | undefined;
  do {
    const page = await cognito.send(new ListUsersCommand({ UserPoolId: userPoolId, PaginationToken: paginationToken }));
    users.push(...(page.Users ?? []));
    paginationToken = page.PaginationToken;
  } while (paginationToken);
  return users;
}

async function groupsOfUser({ cognito, userPoolId }: UserPool, username: string): Promise<string[]> {
  const groups: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await cognito.send(new AdminListGroupsForUserCommand({ UserPoolId: userPoolId, Username: username, NextToken: nextToken }));
    groups.push(...(page.Groups ?? []).flatMap((group) => (group.GroupName ? [group.GroupName] : [])));
    nextToken = page.NextToken;
  } while (nextToken);
  return groups.sort();
}

interface UserSummary {
  username: string;
  enabled: boolean;
  status: string;
  created?: string;
}

function describeUser(user: UserType): UserSummary {
  return {
    username: user.Username ?? '',
    enabled: user.Enabled !== false,
    status: user.UserStatus ?? 'UNKNOWN',
    created: user.UserCreateDate?.toISOString(),
  };
}
