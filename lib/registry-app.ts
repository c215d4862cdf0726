import { Tags, type Environment } from 'aws-cdk-lib';
import type { Construct, Node } from 'constructs';
import { certificateStackName, originSecretParameterName, primaryStackName, replicaApiStackName, replicaBucketStackName } from './naming.js';
import { CertificateStack } from './certificate-stack.js';
import type { RegistryOptions } from './registry-options.js';
import { RegistryStack } from './registry-stack.js';
import { ReplicaApiStack } from './replica-api-stack.js';
import { ReplicaBucketStack } from './replica-bucket-stack.js';

export interface RegistryStacks {
  readonly primary: RegistryStack;
  readonly replicaBuckets: readonly ReplicaBucketStack[];
  readonly replicaApis: readonly ReplicaApiStack[];
  /** With a custom domain and a primary region other than us-east-1. */
  readonly certificate?: CertificateStack;
}

export interface CreateRegistryStacksProps {
  readonly options: RegistryOptions;
  /** Account and region of the primary stack; replica stacks use the same account. */
  readonly env: Environment;
  /** Handler file of the registry function (tests substitute a small fixture). */
  readonly registryFunctionEntry?: string;
}

/**
 * Every stack of one registry deployment, with their deployment order:
 * replica buckets -> primary -> replica APIs.
 *
 * Names shared across regions are deterministic (lib/naming.ts), so almost nothing crosses
 * regions as a reference. The one exception is the primary's API endpoint, which a replica API
 * needs (as PRIMARY_BASE_URL, and as PUBLIC_BASE_URL for the primary's tokens) when there is no
 * custom domain. With the feature flag `@aws-cdk/core:defaultCrossStackReferences: "weak"`
 * (cdk.json) CDK resolves it with `Fn::GetStackOutput` at deploy time: no export, no custom
 * resource, no coupling that would block replacing the primary API. `crossRegionReferences` is
 * still enabled because CDK's "strong" references (the default without that flag) need it. With a
 * custom domain the URL is a plain string and no reference exists at all. (The primary's token
 * verification key is found by its deterministic parameter name in the primary region.)
 */
export function createRegistryStacks(scope: Construct, props: CreateRegistryStacksProps): RegistryStacks {
  const { options, env } = props;
  const replicated = options.replicaRegions.length > 0;

  const replicaBuckets = options.replicaRegions.map(
    (region) =>
      new ReplicaBucketStack(scope, replicaBucketStackName(options.registryName, region), {
        env: { account: env.account, region },
        description: `${options.registryName}: replica blob bucket in ${region}`,
        options,
      }),
  );

  // CloudFront takes certificates from us-east-1 only: elsewhere a small stack there holds it.
  const certificateStack =
    options.customDomain && !options.customDomain.certificateArn && env.region !== 'us-east-1'
      ? new CertificateStack(scope, certificateStackName(options.registryName), {
          env: { account: env.account, region: 'us-east-1' },
          description: `${options.registryName}: certificate of the registry's domain for CloudFront`,
          domain: options.customDomain,
          crossRegionReferences: true,
        })
      : undefined;

  const primary = new RegistryStack(scope, primaryStackName(options.registryName), {
    env,
    description: `${options.registryName}: serverless OCI registry (primary region)`,
    options,
    registryFunctionEntry: props.registryFunctionEntry,
    crossRegionReferences: replicated || certificateStack !== undefined,
    frontDoorCertificate: certificateStack?.certificate,
    replicaApiEndpoints: replicaBuckets.map((stack) => ({ region: stack.region, endpoint: stack.api.httpApi.apiEndpoint })),
  });
  for (const bucketStack of replicaBuckets) primary.addStackDependency(bucketStack, 'replication needs the destination bucket');
  if (certificateStack) primary.addStackDependency(certificateStack, 'the front door needs the certificate');

  const replicaApis = options.replicaRegions.map((region, index) => {
    const replicaApi = new ReplicaApiStack(scope, replicaApiStackName(options.registryName, region), {
      api: replicaBuckets[index]!.api,
      originSecretParameterName: originSecretParameterName(options.registryName),
      env: { account: env.account, region },
      description: `${options.registryName}: read-only registry API in ${region}`,
      options,
      primaryRegion: primary.region,
      primaryBaseUrl: primary.registryUrl,
      registryFunctionEntry: props.registryFunctionEntry,
      crossRegionReferences: true,
    });
    replicaApi.addStackDependency(primary, 'the global table replica is created by the primary stack');
    return replicaApi;
  });

  for (const stack of [primary, ...replicaBuckets, ...replicaApis, ...(certificateStack ? [certificateStack] : [])]) {
    Tags.of(stack).add('Application', options.registryName);
  }
  return { primary, replicaBuckets, replicaApis, certificate: certificateStack };
}

/**
 * Account and region of the primary stack: context `account` / `region` if given, else the CDK
 * CLI's defaults (from the AWS profile), else no account and us-east-1.
 */
export function deploymentEnvFromContext(node: Node): Environment {
  const fromContext = (key: string): string | undefined => {
    const value: unknown = node.tryGetContext(key);
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  return {
    account: fromContext('account') ?? process.env.CDK_DEFAULT_ACCOUNT,
    // The front door's Lambda@Edge function needs a known region (it lives in us-east-1, in a
    // stack of its own when the registry is elsewhere): us-east-1 when nothing says otherwise.
    region: fromContext('region') ?? process.env.CDK_DEFAULT_REGION ?? 'us-east-1',
  };
}
