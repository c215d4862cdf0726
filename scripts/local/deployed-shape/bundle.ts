import { mkdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { build } from 'esbuild';
import { BUNDLE_FILE_NAME, esbuildOptionsOf } from '../../../lib/function-bundling.js';
import { PROJECT_ROOT } from '../../../lib/naming.js';

/**
 * Bundles function entry points exactly as the CDK app bundles them (lib/function-bundling.ts),
 * each into `<outDir>/<entry path without .ts>/index.mjs`, all at once. esbuild takes about a
 * second for the registry function.
 */
export async function bundleFunctions<Name extends string>(entries: Record<Name, string>, outDir: string): Promise<Record<Name, string>> {
  const bundles = await Promise.all(
    Object.entries<string>(entries).map(async ([name, entry]) => {
      const dir = join(outDir, relative(PROJECT_ROOT, entry).replace(/\.ts$/, ''));
      await mkdir(dir, { recursive: true });
      const outfile = join(dir, BUNDLE_FILE_NAME);
      await build(esbuildOptionsOf(entry, outfile));
      return [name, outfile] as const;
    }),
  );
  return Object.fromEntries(bundles) as Record<Name, string>;
}
