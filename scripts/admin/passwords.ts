import { randomInt } from 'node:crypto';
import { UsageError } from './errors.js';
import type { Output } from './command.js';

const LOWER = 'abcdefghijkmnopqrstuvwxyz';
const UPPER = 'ABCDEFGHJKLMNPQRSTUVWXYZ';
const DIGITS = '23456789';
/** Symbols Cognito counts as special and that survive a shell unquoted-ish and a copy-paste. */
const SYMBOLS = '-_.+=';
const GENERATED_LENGTH = 24;

/**
 * A password that meets Cognito's default policy (8+ characters with lower and upper case,
 * digits and symbols), without look-alike characters.
 */
export function generatePassword(): string {
  const classes = [LOWER, UPPER, DIGITS, SYMBOLS];
  const all = classes.join('');
  const characters = classes.map((set) => set[randomInt(set.length)]);
  while (characters.length < GENERATED_LENGTH) characters.push(all[randomInt(all.length)]);
  // Fisher-Yates, so that the guaranteed characters are not always in front.
  for (let index = characters.length - 1; index > 0; index--) {
    const other = randomInt(index + 1);
    [characters[index], characters[other]] = [characters[other], characters[index]];
  }
  return characters.join('');
}

export interface ChosenPassword {
  password: string;
  generated: boolean;
}

/** `--password P`, `--password-stdin` (kept out of shell history and `ps`), or a generated one. */
export async function choosePassword(options: { password?: string; 'password-stdin'?: boolean }, out: Output): Promise<ChosenPassword> {
  if (options.password !== undefined && options['password-stdin']) {
    throw new UsageError('give either --password or --password-stdin, not both');
  }
  if (options['password-stdin']) {
    const password = (await out.readStdin()).replace(/\r?\n$/, '');
    if (!password) throw new UsageError('--password-stdin: no password on standard input');
    return { password, generated: false };
  }
  if (options.password !== undefined) {
    if (!options.password) throw new UsageError('--password must not be empty');
    return { password: options.password, generated: false };
  }
  return { password: generatePassword(), generated: true };
}
