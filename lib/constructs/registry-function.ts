import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { FUNCTION_BUNDLING } from '../function-bundling.js';
import { DEPS_LOCK_FILE, PROJECT_ROOT } from '../naming.js';
import { acknowledgeNag } from '../nag-acknowledgements.js';

export interface RegistryFunctionProps {
  /** Absolute path of the TypeScript handler file (it exports `handler`). */
  readonly entry: string;
  readonly description: string;
  readonly memorySizeMb: number;
  readonly reservedConcurrency?: number;
  readonly logRetentionDays: number;
  readonly environment: Record<string, string>;
  /** A fixed physical name, for a function that must know its own (the pull-through copier). */
  readonly functionName?: string;
  /**
   * Functions behind the API keep the default; the scheduled maintenance run and the custom
   * resource handler are not bound by API Gateway's limit.
   * @default FUNCTION_TIMEOUT (29 s)
   */
  readonly timeout?: Duration;
}

/**
 * API Gateway HTTP APIs give up on an integration after 30 seconds (a hard limit), so a longer
 * Lambda timeout would only let the function keep working for a client that already got a 503.
 * 29 s leaves the function time to log its own timeout.
 */
export const FUNCTION_TIMEOUT = Duration.seconds(29);

/**
 * A Node.js Lambda function of the registry, bundled locally by esbuild into one ESM file.
 *
 * - arm64 (Graviton): cheaper per GB-second than x86 and no native dependencies to worry about.
 * - nodejs22.x, the runtime the project targets (the code also runs on Node 20 locally).
 * - Its own log group with a retention period, and a role that may only write to that log group;
 *   storage permissions are added by the stack (see storage-permissions.ts).
 */
export class RegistryFunction extends Construct {
  readonly handler: nodejs.NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: RegistryFunctionProps) {
    super(scope, id);

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetentionDays as logs.RetentionDays,
      // Function logs are diagnostics; the API access log is the record that is kept.
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // An explicit role instead of the default one with the AWSLambdaBasicExecutionRole managed
    // policy, which may write to any log group in the account.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: props.description,
    });
    this.logGroup.grantWrite(this.role);

    this.handler = new nodejs.NodejsFunction(this, 'Function', {
      entry: props.entry,
      handler: 'handler',
      functionName: props.functionName,
      description: props.description,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySizeMb,
      timeout: props.timeout ?? FUNCTION_TIMEOUT,
      reservedConcurrentExecutions: props.reservedConcurrency,
      role: this.role,
      logGroup: this.logGroup,
      environment: {
        ...props.environment,
        NODE_OPTIONS: FUNCTION_BUNDLING.nodeOptions,
      },
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: DEPS_LOCK_FILE,
      bundling: {
        // Local esbuild (a devDependency); there is no Docker engine on the build machines.
        forceDockerBundling: false,
        // The options themselves are shared with the local deployed shape (function-bundling.ts).
        format: FUNCTION_BUNDLING.format as nodejs.OutputFormat,
        target: FUNCTION_BUNDLING.target,
        mainFields: [...FUNCTION_BUNDLING.mainFields],
        banner: FUNCTION_BUNDLING.banner,
        externalModules: [...FUNCTION_BUNDLING.externalModules],
        minify: FUNCTION_BUNDLING.minify,
        keepNames: FUNCTION_BUNDLING.keepNames,
        sourceMap: FUNCTION_BUNDLING.sourceMap,
        sourcesContent: FUNCTION_BUNDLING.sourcesContent,
      },
    });

    acknowledgeNag(
      this.handler,
      'AwsSolutions-L1',
      'The project targets nodejs22.x (its code and tests run on Node 20 and 22); move to a newer runtime once the test suite runs on it.',
    );
  }

  addToRolePolicy(...statements: iam.PolicyStatement[]): void {
    for (const statement of statements) this.role.addToPolicy(statement);
  }
}
