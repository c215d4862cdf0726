/** `robot ...`: robot accounts for CI, with their own grants, an expiry and a one-time secret. */
import type { Grant } from '../../registry/model/auth/access-model.js';
import { generateRobotSecret, hashRobotSecret } from '../../registry/services/auth/robot-secrets.js';
import type { RobotAccount } from '../../registry/storage/robot-store.js';
import { formatGrant, parseGrantText } from '../../registry/model/auth/grant-sets.js';
import { formatTable, type Command } from './command.js';
import { AdminError, UsageError } from './errors.js';
import { ROBOT_PREFIX, checkRobotName } from './names.js';

const MAX_VALID_DAYS = 3650;
const DAY_SECONDS = 24 * 60 * 60;

export const robotCommands: Command[] = [
  {
    name: 'robot create',
    changes: true,
    args: ['<name>'],
    options: ['grant', 'expires', 'description', 'json'],
    optionsUsage: '--grant <pattern>:<actions> [--grant ...] --expires <days> [--description D] [--json]',
    summary: 'create a robot account; its secret is shown once',
    details:
      `The robot logs in as ${ROBOT_PREFIX}<name> with the secret, and may do only what its grants say.\n` +
      `--expires: days until it can no longer log in, 1 to ${MAX_VALID_DAYS}.\n` +
      "Example: robot create ci-team-a --grant 'team-a/*:pull,push' --expires 90",
    async run({ args, options, clients, out }) {
      const name = checkRobotName(args[0]);
      const grants = parseRobotGrants(options.grant ?? []);
      const validDays = parseValidDays(options.expires);
      const secret = generateRobotSecret();
      const now = Date.now();
      const robot = {
        name,
        description: options.description,
        grants,
        // Epoch seconds, as RobotAccount documents; createdAt is in milliseconds like every
        // other createdAt in the table.
        validUntil: Math.floor(now / 1000) + validDays * DAY_SECONDS,
        revoked: false,
        createdAt: now,
      };
      const created = await clients.robotStore().create({ ...robot, secretHash: await hashRobotSecret(secret) });
      if (!created) throw new AdminError(`robot ${name} exists already (names are never reused; pick another)`);

      const username = `${ROBOT_PREFIX}${name}`;
      if (options.json) {
        out.json({ username, secret, validUntil: new Date(robot.validUntil * 1000).toISOString(), grants });
        return;
      }
      out.line(`Created robot account ${username}, valid until ${new Date(robot.validUntil * 1000).toISOString()}.`);
      out.line(`Username: ${username}`);
      out.line(`Secret:   ${secret}`);
      out.note('The secret is shown only this once and cannot be recovered: store it now, e.g. in your CI secret store.');
      const host = clients.target.registryHost ?? '<registry-host>';
      out.note(`Log in with:  printf '%s' "$ROBOT_SECRET" | docker login -u '${username}' --password-stdin ${host}`);
    },
  },
  {
    name: 'robot list',
    changes: false,
    args: [],
    options: ['json'],
    optionsUsage: '[--json]',
    summary: 'list robot accounts (never their secrets)',
    async run({ options, clients, out }) {
      const now = Math.floor(Date.now() / 1000);
      const robots = (await clients.robotStore().list()).sort((a, b) => a.name.localeCompare(b.name)).map((robot) => describeRobot(robot, now));
      if (options.json) return out.json(robots);
      const rows = robots.map((robot) => [
        robot.username,
        robot.status,
        robot.validUntil,
        robot.grants.map(formatGrant).join(' '),
        robot.description ?? '',
      ]);
      for (const line of formatTable(['USERNAME', 'STATUS', 'VALID UNTIL', 'GRANTS', 'DESCRIPTION'], rows)) out.line(line);
    },
  },
  {
    name: 'robot revoke',
    changes: true,
    args: ['<name>'],
    options: [],
    summary: 'stop a robot from logging in, for good',
    async run({ args, clients, out }) {
      const name = checkRobotName(args[0]);
      if (!(await clients.robotStore().revoke(name))) throw new AdminError(`no robot ${name}`);
      out.line(`Revoked ${ROBOT_PREFIX}${name}: new logins are refused.`);
    },
  },
];

/** A robot's or a trust's grants: at least one. */
export function parseRobotGrants(values: string[], who = 'a robot'): Grant[] {
  if (values.length === 0) throw new UsageError(`${who} needs at least one --grant <pattern>:<actions>`);
  return parseGrantOptions(values);
}

/** `--grant team-a/*:pull,push ...` → grants (robots', trusts' and personal access tokens'); a malformed one is a usage error. */
export function parseGrantOptions(values: string[]): Grant[] {
  return values.map((value) => {
    const grant = parseGrantText(value);
    if ('problem' in grant) throw new UsageError(`--grant ${grant.problem}`);
    return grant;
  });
}

function parseValidDays(value: string | undefined): number {
  if (value === undefined) throw new UsageError(`--expires <days> is required (1 to ${MAX_VALID_DAYS})`);
  const days = /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(days) || days < 1 || days > MAX_VALID_DAYS) {
    throw new UsageError(`--expires takes a number of days from 1 to ${MAX_VALID_DAYS}, not "${value}"`);
  }
  return days;
}

interface RobotSummary {
  username: string;
  status: 'active' | 'revoked' | 'expired';
  validUntil: string;
  grants: Grant[];
  description?: string;
  createdAt: string;
}

function describeRobot(robot: RobotAccount, now: number): RobotSummary {
  return {
    username: `${ROBOT_PREFIX}${robot.name}`,
    status: robot.revoked ? 'revoked' : robot.validUntil <= now ? 'expired' : 'active',
    validUntil: new Date(robot.validUntil * 1000).toISOString(),
    grants: robot.grants,
    description: robot.description,
    createdAt: new Date(robot.createdAt).toISOString(),
  };
}
