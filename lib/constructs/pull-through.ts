import { Arn, ArnFormat, CfnOutput, Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { acknowledgeWildcardResources } from '../nag-acknowledgements.js';
import { FUNCTION_ENTRIES, pullThroughCopierFunctionName, upstreamCredentialsParameterPrefix } from '../naming.js';
import { kmsKeysArn, parameterArn } from './auth-permissions.js';
import { RegistryFunction } from './registry-function.js';
import { BLOB_COPY_PREFIXES, blobCopyBucketStatements, registryObjectArns, registryTableStatements } from './storage-permissions.js';
import { environmentOf } from '../../registry/config/environment.js';

export interface PullThroughProps {
  readonly registryName: string;
  readonly tableName: string;
  readonly tableArn: string;
  readonly bucketName: string;
  readonly bucketArn: string;
  readonly uploadSessionTtlSeconds: number;
  readonly logRetentionDays: number;
  /**
   * The registry API function: it dispatches copies to the copier. It and the copier are the only
   * functions that call upstreams, so the only ones that read their credentials: the token
   * endpoint resolves names from the upstream records in the table alone, and the maintenance run
   * expires cached images from the table alone.
   */
  readonly apiFunction: RegistryFunction;
}

/** Lambda's longest run: a copy checkpoints a minute before and invokes itself again. */
export const COPIER_TIMEOUT = Duration.minutes(15);
/** One full vCPU (network bandwidth grows with memory); 16 MiB parts keep the heap small. */
export const COPIER_MEMORY_MB = 1769;
/** Copies at once: spares upstreams (and their rate limits) and the account's concurrency. */
export const COPIER_RESERVED_CONCURRENCY = 20;

/**
 * What the pull-through cache needs in AWS (docs/pull-through.md): the copier function that
 * copies blobs from upstreams into the bucket in the background (invoked asynchronously, one blob
 * per event, Lambda's retries; nothing runs idle), who may invoke it (the API function only, and
 * the copier itself to resume a long copy), and who may read the upstream credentials (those two; SSM
 * SecureStrings under `/<registryName>/upstreams/`, written by the admin CLI): GetParameter and
 * decryption through Parameter Store for those parameters only, never listing or writing.
 */
export class PullThrough extends Construct {
  readonly copier: RegistryFunction;
  readonly credentialsParameterPrefix: string;

  constructor(scope: Construct, id: string, props: PullThroughProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.credentialsParameterPrefix = upstreamCredentialsParameterPrefix(props.registryName);
    const copierName = pullThroughCopierFunctionName(props.registryName);
    const copierArn = Arn.format(
      { service: 'lambda', resource: 'function', resourceName: copierName, arnFormat: ArnFormat.COLON_RESOURCE_NAME },
      stack,
    );
    const pullThroughEnvironment = {
      UPSTREAM_CREDENTIALS_PARAMETER_PREFIX: this.credentialsParameterPrefix,
      BLOB_COPIER_FUNCTION: copierName,
    } as const;

    this.copier = new RegistryFunction(this, 'Copier', {
      entry: FUNCTION_ENTRIES.pullThroughCopier,
      functionName: copierName,
      description: `${props.registryName}: copies pull-through blobs from their upstream into the cache`,
      memorySizeMb: COPIER_MEMORY_MB,
      timeout: COPIER_TIMEOUT,
      reservedConcurrency: COPIER_RESERVED_CONCURRENCY,
      logRetentionDays: props.logRetentionDays,
      environment: environmentOf({
        TABLE_NAME: props.tableName,
        BUCKET_NAME: props.bucketName,
        UPLOAD_SESSION_TTL_SECONDS: props.uploadSessionTtlSeconds,
        ...pullThroughEnvironment,
      }),
    });
    // A lost or failed event is harmless (the lease lapses and the next pull starts the copy
    // again); two retries cover a brief upstream or service error.
    this.copier.handler.configureAsyncInvoke({ retryAttempts: 2, maxEventAge: Duration.hours(1) });
    this.copier.addToRolePolicy(
      ...registryTableStatements(props.tableArn),
      ...blobCopyBucketStatements(props.bucketArn),
      invokeCopierStatement('PullThroughCopierResume', copierArn),
    );
    acknowledgeWildcardResources(
      this.copier.role,
      registryObjectArns(props.bucketArn, BLOB_COPY_PREFIXES),
      'The copier writes a blob as an upload does: objects named by upload id and part under uploads/, and by digest under blobs/, so their names are not known at deploy time; the grant is limited to those two prefixes (no manifests/, no direct/) and to the actions an upload performs.',
    );

    for (const [key, value] of Object.entries(environmentOf(pullThroughEnvironment))) props.apiFunction.handler.addEnvironment(key, value);
    props.apiFunction.addToRolePolicy(invokeCopierStatement('PullThroughCopierInvoke', copierArn));

    const credentialArns = parameterArn(this, `${this.credentialsParameterPrefix}*`);
    for (const fn of [props.apiFunction, this.copier]) {
      fn.addToRolePolicy(...upstreamCredentialStatements(this, credentialArns));
      acknowledgeWildcardResources(
        fn.role,
        [credentialArns, kmsKeysArn(this)],
        'Upstream credentials are one SecureString per upstream under the registry’s upstreams/ path, added and removed by the admin CLI, so their names are not known at deploy time; the grant is GetParameter on that path only, and decryption only through Parameter Store for parameters on that path (kms:ViaService and kms:EncryptionContext:PARAMETER_ARN conditions).',
      );
    }

    new CfnOutput(stack, 'UpstreamCredentialsPrefix', {
      value: this.credentialsParameterPrefix,
      description: 'SSM path of the pull-through upstream credentials (npm run admin -- upstream add)',
    });
  }
}

function invokeCopierStatement(sid: string, copierArn: string): iam.PolicyStatement {
  return new iam.PolicyStatement({ sid, actions: ['lambda:InvokeFunction'], resources: [copierArn] });
}

/**
 * GetParameter on the upstream credentials path, and KMS decryption (the AWS managed key aws/ssm)
 * only through Parameter Store for parameters on that path: secureParameterKeyStatement's
 * conditions, with StringLike on the path instead of one parameter's ARN.
 */
export function upstreamCredentialStatements(scope: Construct, credentialArns: string): iam.PolicyStatement[] {
  const stack = Stack.of(scope);
  return [
    new iam.PolicyStatement({ sid: 'UpstreamCredentialsRead', actions: ['ssm:GetParameter'], resources: [credentialArns] }),
    new iam.PolicyStatement({
      sid: 'UpstreamCredentialsDecrypt',
      actions: ['kms:Decrypt'],
      resources: [kmsKeysArn(scope)],
      conditions: {
        StringEquals: { 'kms:ViaService': `ssm.${stack.region}.${stack.urlSuffix}` },
        StringLike: { 'kms:EncryptionContext:PARAMETER_ARN': credentialArns },
      },
    }),
  ];
}
