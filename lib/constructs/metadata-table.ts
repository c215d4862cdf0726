import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';

export interface MetadataTableProps {
  /** Deterministic physical name (see lib/naming.ts); the same in every replica region. */
  readonly tableName: string;
  /** Regions that get a global table replica (the replica APIs read from them). */
  readonly replicaRegions: readonly string[];
}

/** Attribute names the function code relies on (registry/storage/keys.ts). */
export const PARTITION_KEY = 'PK';
export const SORT_KEY = 'SK';
export const TTL_ATTRIBUTE = 'expiresAt';

/**
 * The registry's single table: repositories, tags, manifests, blob index, upload sessions.
 *
 * On-demand capacity (traffic is bursty: a CI pipeline pushes, then nothing for hours), point-in-time
 * recovery, deletion protection and RETAIN, because the table is the only record of which digests
 * make up which image. Upload sessions expire through TTL on `expiresAt`.
 */
export class MetadataTable extends Construct {
  readonly table: dynamodb.TableV2;

  constructor(scope: Construct, id: string, props: MetadataTableProps) {
    super(scope, id);
    this.table = new dynamodb.TableV2(this, 'Table', {
      tableName: props.tableName,
      partitionKey: { name: PARTITION_KEY, type: dynamodb.AttributeType.STRING },
      sortKey: { name: SORT_KEY, type: dynamodb.AttributeType.STRING },
      billing: dynamodb.Billing.onDemand(),
      timeToLiveAttribute: TTL_ATTRIBUTE,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
      // The events' source (docs/events.md); global-table replicas need the same stream anyway.
      dynamoStream: dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
      // Replicas inherit PITR and deletion protection from the table-level settings above.
      replicas: props.replicaRegions.map((region) => ({ region })),
    });
  }
}
