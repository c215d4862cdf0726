import { Arn, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { acknowledgeWildcardResources } from '../nag-acknowledgements.js';

export interface BlobReplicationRoleProps {
  readonly sourceBucketName: string;
  readonly destinationBucketNames: readonly string[];
  /** Key prefixes that are replicated, e.g. `blobs/`. */
  readonly replicatedPrefixes: readonly string[];
}

/**
 * The role S3 assumes to copy blobs from the primary bucket to the replica buckets.
 *
 * Its policy is inline in the role (not a separate AWS::IAM::Policy) so that it exists before the
 * bucket whose replication configuration names the role, and it only covers the replicated
 * prefixes. ARNs are built from the deterministic bucket names, so the role does not depend on
 * any bucket resource.
 */
export class BlobReplicationRole extends Construct {
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: BlobReplicationRoleProps) {
    super(scope, id);
    const bucketArn = (bucketName: string) => Arn.format({ service: 's3', region: '', account: '', resource: bucketName }, Stack.of(this));
    const sourceBucketArn = bucketArn(props.sourceBucketName);
    const sourceObjectArns = props.replicatedPrefixes.map((prefix) => `${sourceBucketArn}/${prefix}*`);
    const destinationObjectArns = props.destinationBucketNames.flatMap((name) =>
      props.replicatedPrefixes.map((prefix) => `${bucketArn(name)}/${prefix}*`),
    );

    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('s3.amazonaws.com'),
      description: 'S3 cross-region replication of registry blobs and manifests',
      inlinePolicies: {
        Replication: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              actions: ['s3:GetReplicationConfiguration', 's3:ListBucket'],
              resources: [sourceBucketArn],
            }),
            new iam.PolicyStatement({
              actions: ['s3:GetObjectVersionForReplication', 's3:GetObjectVersionAcl', 's3:GetObjectVersionTagging'],
              resources: sourceObjectArns,
            }),
            new iam.PolicyStatement({
              actions: ['s3:ReplicateObject', 's3:ReplicateDelete', 's3:ReplicateTags'],
              resources: destinationObjectArns,
            }),
          ],
        }),
      },
    });

    acknowledgeWildcardResources(
      this.role,
      [...sourceObjectArns, ...destinationObjectArns],
      'Replication acts on every object under the replicated key prefixes (blobs/, manifests/); object keys are content digests that cannot be enumerated in a policy.',
    );
  }
}
