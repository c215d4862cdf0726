import type { BuildOptions } from 'esbuild';

/**
 * How every Lambda function of the registry is bundled: one ESM file by esbuild, the same for
 * the CDK app (RegistryFunction maps it onto NodejsFunction's bundling options) and for the
 * local deployed shape (`REGISTRY_SHAPE=aws npm start`, which calls esbuild with
 * `esbuildOptionsOf`), so that what runs locally is what ships.
 */
export const FUNCTION_BUNDLING = {
  /** The Lambda runtime's Node major version (nodejs22.x); the code also runs on Node 20 locally. */
  target: 'node22',
  format: 'esm',
  /** Prefer the ESM builds of dependencies. */
  mainFields: ['module', 'main'],
  /**
   * Some dependencies are CommonJS and call require() for Node built-ins; an ESM bundle has no
   * require of its own.
   */
  banner: "import { createRequire as __registryCreateRequire } from 'node:module'; const require = __registryCreateRequire(import.meta.url);",
  /**
   * Bundle the AWS SDK instead of using the runtime's copy: the code depends on recent client
   * options (requestChecksumCalculation), and a pinned SDK deploys reproducibly.
   */
  externalModules: [] as string[],
  minify: true,
  /**
   * Keep function and class names: the request log and the EMF metrics name operations by the
   * handler function's name, which minification would turn into e.g. "EJ".
   */
  keepNames: true,
  /** Stack traces point at the TypeScript sources (the bundle ships a source map). */
  sourceMap: true,
  sourcesContent: false,
  /** The functions' NODE_OPTIONS. */
  nodeOptions: '--enable-source-maps',
} as const;

/** The bundle's file name inside its output directory, as NodejsFunction names an ESM bundle. */
export const BUNDLE_FILE_NAME = 'index.mjs';

/** The same bundle through esbuild's API: `entry` into `outfile` (conventionally `<dir>/index.mjs`). */
export function esbuildOptionsOf(entry: string, outfile: string): BuildOptions {
  return {
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    target: FUNCTION_BUNDLING.target,
    format: FUNCTION_BUNDLING.format,
    mainFields: [...FUNCTION_BUNDLING.mainFields],
    banner: { js: FUNCTION_BUNDLING.banner },
    external: [...FUNCTION_BUNDLING.externalModules],
    minify: FUNCTION_BUNDLING.minify,
    keepNames: FUNCTION_BUNDLING.keepNames,
    sourcemap: FUNCTION_BUNDLING.sourceMap,
    sourcesContent: FUNCTION_BUNDLING.sourcesContent,
    logLevel: 'warning',
  };
}
