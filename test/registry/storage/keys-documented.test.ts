/**
 * docs/storage.md's item table lists every key shape registry/storage/keys.ts builds: a new
 * item kind without its row fails here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { keys } from '../../../registry/storage/keys.js';

/** Stands for every argument, so that the fixed parts of a key are what is left. */
const HOLE = '\u0000';

/** The `PK` and `SK` cells' code spans of each row of the Items table. */
function documentedItems(): { row: string; pk: string[]; sk: string[] }[] {
  const text = readFileSync(new URL('../../../docs/storage.md', import.meta.url), 'utf8');
  const section = text.slice(text.indexOf('## Items'), text.indexOf('S3 objects:'));
  const spans = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((match) => match[1]);
  return section
    .split('\n')
    .filter((line) => line.startsWith('| ') && !line.startsWith('| item ') && !line.startsWith('|---'))
    .map((line) => {
      const cells = line.split(' | ');
      return { row: cells[0].slice(2), pk: spans(cells[1]), sk: spans(cells[2]) };
    });
}

/** A documented key: its fixed parts as written, each argument some `<placeholder>`. */
function shapeOf(value: string): RegExp {
  const fixed = value.split(HOLE).map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${fixed.join('[^`]*<[^>]+>[^`]*')}$`);
}

describe('docs/storage.md', () => {
  const rows = documentedItems();
  const builders = Object.entries(keys) as [string, (...args: string[]) => { PK: string; SK: string }][];

  it.each(builders)('has a row for keys.%s', (_name, build) => {
    const key = build(HOLE, HOLE, HOLE);
    const pk = shapeOf(key.PK);
    const sk = shapeOf(key.SK);
    const matching = rows.filter((row) => row.pk.some((cell) => pk.test(cell)) && row.sk.some((cell) => sk.test(cell)));
    expect(
      matching.map((row) => row.row),
      `no row with PK ${key.PK.replaceAll(HOLE, '<…>')} and SK ${key.SK.replaceAll(HOLE, '<…>')}`,
    ).not.toEqual([]);
  });
});
