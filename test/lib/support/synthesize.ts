import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Validations, type Environment, type Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../../lib/naming.js';
import { createRegistryStacks, type RegistryStacks } from '../../../lib/registry-app.js';
import { resolveRegistryOptions, type RegistryOptionsInput } from '../../../lib/registry-options.js';

export const TEST_ENV = { account: '123456789012', region: 'us-east-1' } as const satisfies Environment;

export interface NagViolation {
  readonly rule: string;
  readonly path: string;
}

export interface SynthesizedRegistry {
  readonly stacks: RegistryStacks;
  /** Findings of the AwsSolutions pack that no acknowledgement covers. */
  readonly nagViolations: readonly NagViolation[];
  template(stack: Stack): Template;
}

/** The context of the real app: feature flags and option defaults from cdk.json. */
function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> };
  return cdkJson.context;
}

/**
 * Builds the registry's stacks exactly as bin/registry.ts does, with the AwsSolutions checks, and
 * synthesizes them once. Lambda bundling is skipped (bundling.test.ts covers it), which keeps the
 * tests independent of the function code that is being written in parallel.
 */
export function synthesizeRegistry(input: RegistryOptionsInput, env: Environment = TEST_ENV): SynthesizedRegistry {
  const app = new App({
    outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'registry-cdk-test-')),
    context: {
      ...cdkJsonContext(),
      // Skip esbuild for every stack.
      'aws:cdk:bundling-stacks': [],
      // cdk-nag 3 reports through CDK's policy validation; keep synthesis going so the test can
      // read the report instead of failing inside beforeAll.
      '@aws-cdk/core:failSynthOnValidationErrors': false,
    },
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const stacks = createRegistryStacks(app, { options: resolveRegistryOptions(input, env.region), env });
  const assembly = app.synth();

  const nagViolations = awsSolutionsViolations(assembly.directory);

  return {
    stacks,
    nagViolations,
    // app.synth() caches the assembly, so this does not synthesize again.
    template: (stack) => Template.fromStack(stack),
  };
}

/** A describe's registry, synthesized once before its tests, and its primary stack's template. */
export interface SynthesizedPrimary {
  readonly registry: SynthesizedRegistry;
  readonly template: Template;
}

/**
 * Synthesizes `input` once for the enclosing describe (in beforeAll) and adds its test that the
 * shape passes the AwsSolutions checks: every stack shape is nag-checked, none by hand.
 */
export function useSynthesizedPrimary(input: RegistryOptionsInput, title = 'passes the AwsSolutions checks'): SynthesizedPrimary {
  const synthesized = {} as { registry: SynthesizedRegistry; template: Template };
  beforeAll(() => {
    synthesized.registry = synthesizeRegistry(input);
    synthesized.template = synthesized.registry.template(synthesized.registry.stacks.primary);
  }, 120_000);
  it(title, () => {
    expect(synthesized.registry.nagViolations).toEqual([]);
  });
  return synthesized;
}

interface DashboardWidget {
  type: string;
  properties: { title?: string; metrics?: unknown[][] };
}

/**
 * The parsed body of the template's only dashboard. CloudFormation references inside it (metric
 * dimensions, region) are replaced by the name of the referenced resource.
 */
/** The AwsSolutions findings cdk-nag 3 wrote into a synthesized assembly that no acknowledgement covers. */
export function awsSolutionsViolations(assemblyDirectory: string): NagViolation[] {
  const report = JSON.parse(fs.readFileSync(path.join(assemblyDirectory, 'validation-report.json'), 'utf8')) as {
    pluginReports: { pluginName: string; violations: { ruleName: string; violatingConstructs: { constructPath: string }[] }[] }[];
  };
  return report.pluginReports
    .filter((plugin) => plugin.pluginName === 'AwsSolutions')
    .flatMap((plugin) => plugin.violations)
    .flatMap((violation) => violation.violatingConstructs.map((construct) => ({ rule: violation.ruleName, path: construct.constructPath })));
}

export function dashboardWidgets(template: Template): DashboardWidget[] {
  const dashboards = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
  if (dashboards.length !== 1) throw new Error(`expected one dashboard, found ${dashboards.length}`);
  const body = dashboards[0].Properties.DashboardBody as { 'Fn::Join': [string, unknown[]] };
  const text = body['Fn::Join'][1].map((part) => (typeof part === 'string' ? part : `<${JSON.stringify(part).replace(/["\\]/g, '')}>`)).join('');
  return (JSON.parse(text) as { widgets: DashboardWidget[] }).widgets;
}

/** `namespace/metricName` of every plain metric, and the expression of every math/search metric, per widget title. */
export function dashboardMetrics(template: Template): Record<string, string[]> {
  const metricsByTitle: Record<string, string[]> = {};
  for (const widget of dashboardWidgets(template)) {
    if (widget.type !== 'metric' || !widget.properties.title) continue;
    metricsByTitle[widget.properties.title] = (widget.properties.metrics ?? []).map((metric) => {
      const options = metric.find((item): item is { expression: string } => typeof item === 'object' && item !== null && 'expression' in item);
      return options ? options.expression : `${metric[0]}/${metric[1]}`;
    });
  }
  return metricsByTitle;
}

/**
 * The only resource of a type whose logical id starts with `idPrefix`, the construct path
 * without separators (e.g. `TokenFunction` for the token endpoint's Lambda function).
 */
export function resourceWithIdPrefix(
  template: Template,
  type: string,
  idPrefix: string,
): { id: string; Properties: Record<string, any>; DependsOn?: string[] } {
  const matches = Object.entries(template.findResources(type)).filter(([id]) => id.startsWith(idPrefix));
  if (matches.length !== 1) throw new Error(`expected one ${type} named ${idPrefix}*, found ${matches.length}`);
  const [id, resource] = matches[0];
  return { id, Properties: resource.Properties, DependsOn: resource.DependsOn };
}

export interface PolicyStatementJson {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

/** Every statement of the IAM policies attached to the role whose logical id starts with `rolePrefix`. */
export function roleStatements(template: Template, rolePrefix: string): PolicyStatementJson[] {
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((policy) => (policy.Properties.Roles as { Ref: string }[]).some((role) => role.Ref.startsWith(rolePrefix)))
    .flatMap((policy) => policy.Properties.PolicyDocument.Statement as PolicyStatementJson[]);
}

/** Statements by Sid; statements without one (the log group grant) are left out. */
export function statementsBySid(statements: readonly PolicyStatementJson[]): Record<string, PolicyStatementJson> {
  return Object.fromEntries(statements.filter((statement) => statement.Sid).map((statement) => [statement.Sid, statement]));
}

/** The actions of statements as one set. */
export function actionsOf(...statements: PolicyStatementJson[]): Set<string> {
  return new Set(statements.flatMap((statement) => [statement.Action].flat()));
}
