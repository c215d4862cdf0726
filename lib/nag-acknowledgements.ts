import { Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
// cdk-nag names IAM5 findings after the flattened resource ARN; reuse its own flattening so the
// acknowledgement below matches the finding exactly (cdk-nag 3 has no prefix matching yet).
import { flattenCfnReference } from 'cdk-nag/lib/utils/flatten-cfn-reference.js';

/**
 * Acknowledges a cdk-nag rule on a construct (and everything below it) with a written reason.
 * cdk-nag 3 replaced `NagSuppressions` with CDK's own `Validations.of(...).acknowledge`.
 */
export function acknowledgeNag(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/**
 * Acknowledges AwsSolutions-IAM5 for exactly these wildcard resource ARNs (for example
 * `<bucket ARN>/blobs/*`), which must be the same strings that were put into the policy.
 */
export function acknowledgeWildcardResources(scope: IConstruct, resourceArns: readonly string[], reason: string): void {
  const stack = Stack.of(scope);
  for (const arn of resourceArns) {
    const flattened = flattenCfnReference(stack.resolve(arn));
    if (!flattened.includes('*')) continue;
    acknowledgeNag(scope, `AwsSolutions-IAM5[Resource::${flattened}]`, reason);
  }
}
