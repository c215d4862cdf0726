import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { marshall } from '@aws-sdk/util-dynamodb';
import { build } from 'esbuild';
import { RegistryFunction } from '../../lib/constructs/registry-function.js';
import { eventDispatcherEnvironment } from '../../lib/event-dispatcher-environment.js';
import { esbuildOptionsOf } from '../../lib/function-bundling.js';
import { FUNCTION_ENTRIES } from '../../lib/naming.js';
import { environmentOf } from '../../registry/config/environment.js';
import { keys } from '../../registry/storage/keys.js';
import { bundleFunctions } from '../../scripts/local/deployed-shape/bundle.js';
import { startLambdaFunction, type LambdaFunction } from '../../scripts/local/deployed-shape/lambda-emulator.js';

const FIXTURE_ENTRY = path.join(import.meta.dirname, 'fixtures', 'esm-handler.ts');

/** Local esbuild bundling of a registry function (no Docker), checked on a small fixture handler. */
describe('RegistryFunction bundling', () => {
  let bundleFile: string;
  let template: Template;

  beforeAll(() => {
    const app = new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'registry-bundling-test-')) });
    const stack = new Stack(app, 'BundlingTest', { env: { account: '123456789012', region: 'us-east-1' } });
    new RegistryFunction(stack, 'Fixture', {
      entry: FIXTURE_ENTRY,
      description: 'bundling fixture',
      memorySizeMb: 1024,
      logRetentionDays: 30,
      environment: {},
    });
    const assembly = app.synth();
    template = Template.fromStack(stack);
    const assetDirs = fs.readdirSync(assembly.directory).filter((name) => name.startsWith('asset.'));
    expect(assetDirs).toHaveLength(1);
    bundleFile = path.join(assembly.directory, assetDirs[0], 'index.mjs');
  }, 60_000);

  it('emits one ESM file with a source map and the createRequire banner', () => {
    const bundle = fs.readFileSync(bundleFile, 'utf8');
    expect(bundle.startsWith("import { createRequire as __registryCreateRequire } from 'node:module';")).toBe(true);
    expect(bundle).toMatch(/export\s*\{/);
    expect(fs.existsSync(`${bundleFile}.map`)).toBe(true);
  });

  it('runs under Node as an ES module, including CommonJS code that calls require()', () => {
    // A separate Node process, as in Lambda: an ES module has no global require there.
    const script = `const { handler } = await import(${JSON.stringify(pathToFileURL(bundleFile).href)}); console.log(JSON.stringify(await handler()));`;
    const output = execFileSync(process.execPath, ['--input-type=module', '--eval', script], { encoding: 'utf8' });
    const result = JSON.parse(output) as { body: string; moduleType: string };
    expect(result.body).toBe(createHash('sha256').update('registry').digest('hex'));
    expect(result.moduleType).toBe('string');
  });

  it('is minified but keeps function names, which the request log and EMF metrics name operations by', () => {
    const bundle = fs.readFileSync(bundleFile, 'utf8');
    // Minified: the fixture's comments and indentation are gone.
    expect(bundle).not.toContain('A stand-in for the registry handler');
    expect(bundle.split('\n').length).toBeLessThan(10);
    const script = `const { handler } = await import(${JSON.stringify(pathToFileURL(bundleFile).href)}); console.log(JSON.stringify(await handler()));`;
    const output = execFileSync(process.execPath, ['--input-type=module', '--eval', script], { encoding: 'utf8' });
    expect(JSON.parse(output)).toMatchObject({ operation: 'getManifestFixture', result: 'manifest' });
  });

  it('points the function at the bundle’s handler export', () => {
    template.hasResourceProperties('AWS::Lambda::Function', { Handler: 'index.handler', Runtime: 'nodejs22.x' });
  });

  it('is the bundle the local deployed shape builds with esbuildOptionsOf, byte for byte', async () => {
    const outfile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'registry-bundling-local-')), 'index.mjs');
    await build(esbuildOptionsOf(FIXTURE_ENTRY, outfile));
    const withoutMapLink = (code: string) => code.replace(/\/\/# sourceMappingURL=.*\s*$/, '');
    expect(withoutMapLink(fs.readFileSync(outfile, 'utf8'))).toBe(withoutMapLink(fs.readFileSync(bundleFile, 'utf8')));
  });
});

/** The pull-through copier, as Lambda runs it: bundled like every function, and its cold start imports cleanly. */
describe('pull-through copier bundle', () => {
  it('bundles functions/pull-through-copier.ts into one ESM file whose import starts the registry and exports handler', async () => {
    const outfile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'registry-bundling-copier-')), 'index.mjs');
    await build(esbuildOptionsOf(FUNCTION_ENTRIES.pullThroughCopier, outfile));
    const script = `const module = await import(${JSON.stringify(pathToFileURL(outfile).href)}); console.log(typeof module.handler);`;
    const env = {
      ...process.env,
      TABLE_NAME: 'registry',
      BUCKET_NAME: 'registry-blobs',
      AWS_REGION: 'us-east-1',
      BLOB_COPIER_FUNCTION: 'oci-registry-pull-through-copier',
      UPSTREAM_CREDENTIALS_PARAMETER_PREFIX: '/oci-registry/upstreams/',
    };
    const output = execFileSync(process.execPath, ['--input-type=module', '--eval', script], { encoding: 'utf8', env });
    expect(output.trim()).toBe('function');
  }, 120_000);
});

/**
 * The event dispatcher (functions/event-dispatcher.ts) as bundled for Lambda and for the local
 * deployed shape, run as Lambda runs it (the shape's Lambda emulator: plain Node, the bundle
 * only) with the environment the CDK construct writes (eventDispatcherEnvironment) and nothing
 * else but the endpoints: its configuration is accepted, a batch of records that make no event
 * passes, and a record whose event cannot be published is reported as the batch's first failure.
 */
describe('event dispatcher bundle', () => {
  const UNREACHABLE = 'http://127.0.0.1:9';
  let dispatcher: LambdaFunction;

  beforeAll(async () => {
    const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'registry-dispatcher-bundle-'));
    const { eventDispatcher } = await bundleFunctions({ eventDispatcher: FUNCTION_ENTRIES.eventDispatcher }, outDir);
    dispatcher = startLambdaFunction({
      name: 'event-dispatcher',
      bundle: eventDispatcher,
      environment: environmentOf({
        ...eventDispatcherEnvironment({
          tableName: 'registry-metadata',
          bucketName: 'registry-blobs',
          publicBaseUrl: 'https://registry.example.com',
          pullEvents: false,
          retryRoleArn: 'arn:aws:iam::123456789012:role/scheduler',
          retryGroup: 'registry-webhook-retries',
        }),
        // Nothing listens there: every AWS call fails (after the SDK's own retries).
        DYNAMODB_ENDPOINT: UNREACHABLE,
        EVENTBRIDGE_ENDPOINT: UNREACHABLE,
        SCHEDULER_ENDPOINT: UNREACHABLE,
      }),
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      maxInstances: 1,
    });
  }, 60_000);
  afterAll(async () => {
    await dispatcher?.stop();
  });

  const streamRecord = (sequence: string, key: Record<string, string>, newImage: Record<string, unknown>) => ({
    eventID: `event-${sequence}`,
    eventName: 'MODIFY',
    eventVersion: '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: 'us-east-1',
    dynamodb: {
      ApproximateCreationDateTime: 1_700_000_000,
      Keys: marshall(key),
      NewImage: marshall({ ...key, ...newImage }),
      SequenceNumber: sequence,
    },
  });
  const catalogTouch = (sequence: string) => streamRecord(sequence, keys.catalogEntry('team/app'), { name: 'team/app', pushes: 2 });
  const push = (sequence: string) =>
    streamRecord(sequence, keys.manifest('team/app', `sha256:${'a'.repeat(64)}`), {
      pushedAt: 1_700_000_000_000,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
    });

  it('accepts the construct’s environment and passes a batch that makes no events', async () => {
    expect(await dispatcher.invoke({ Records: [catalogTouch('1'), catalogTouch('2')] })).toEqual({ batchItemFailures: [] });
  });

  it('reports the first record whose event could not be published (ReportBatchItemFailures)', async () => {
    expect(await dispatcher.invoke({ Records: [catalogTouch('10'), push('11'), catalogTouch('12')] })).toEqual({
      batchItemFailures: [{ itemIdentifier: '11' }],
    });
  }, 30_000);
});
