import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import { Construct } from 'constructs';
import { acknowledgeWildcardResources } from '../nag-acknowledgements.js';
import { RegistryFunction } from './registry-function.js';
import {
  directObjectArns,
  maintenanceBucketStatements,
  maintenanceStateObjectArns,
  maintenanceTableStatements,
  registryObjectArns,
} from './storage-permissions.js';
import { environmentOf } from '../../registry/config/environment.js';

export interface RegistryMaintenanceProps {
  readonly registryName: string;
  /** Handler file of the maintenance run (functions/gc.ts). */
  readonly entry: string;
  readonly tableName: string;
  readonly tableArn: string;
  readonly bucketName: string;
  readonly bucketArn: string;
  /** EventBridge schedule expression, e.g. `rate(1 day)`. */
  readonly schedule: string;
  readonly gcGraceSeconds: number;
  readonly logRetentionDays: number;
}

/** Lambda's limit, which the run needs: a mark scans the whole table. */
export const MAINTENANCE_TIMEOUT = Duration.minutes(15);
/** The mark keeps up to a million digests (and what it learned about them) in memory. */
export const MAINTENANCE_MEMORY_MB = 2048;

/**
 * The scheduled maintenance run of the primary region: retention policies, then garbage
 * collection (functions/gc.ts). Replica regions need none: the global table replicates the
 * deletions and S3 replication the delete markers.
 *
 * - Reserved concurrency 1: two runs never overlap. A schedule event that arrives while a run is
 *   still going waits in Lambda's asynchronous queue (and is dropped after an hour).
 * - No automatic retry of a failed run: every run is safe to stop anywhere, and the next
 *   scheduled run picks up; the failure shows in the maintenance alarm (observability.ts).
 * - Costs nothing at idle beyond the run itself: an EventBridge schedule is free.
 */
export class RegistryMaintenance extends Construct {
  readonly function: RegistryFunction;
  readonly rule: events.Rule;

  constructor(scope: Construct, id: string, props: RegistryMaintenanceProps) {
    super(scope, id);

    this.function = new RegistryFunction(this, 'Function', {
      entry: props.entry,
      description: `${props.registryName}: scheduled maintenance (retention policies, then garbage collection)`,
      memorySizeMb: MAINTENANCE_MEMORY_MB,
      timeout: MAINTENANCE_TIMEOUT,
      reservedConcurrency: 1,
      logRetentionDays: props.logRetentionDays,
      environment: environmentOf({
        TABLE_NAME: props.tableName,
        BUCKET_NAME: props.bucketName,
        GC_GRACE_SECONDS: String(props.gcGraceSeconds),
      }),
    });
    this.function.handler.configureAsyncInvoke({ retryAttempts: 0, maxEventAge: Duration.hours(1) });
    this.function.addToRolePolicy(...maintenanceTableStatements(props.tableArn), ...maintenanceBucketStatements(props.bucketArn));
    acknowledgeWildcardResources(
      this.function.role,
      [...registryObjectArns(props.bucketArn), ...directObjectArns(props.bucketArn), ...maintenanceStateObjectArns(props.bucketArn)],
      'Garbage collection reads and deletes objects named by upload id or digest under the registry prefixes (blobs/, uploads/, manifests/), and keeps its run state under gc/; the grant is limited to those prefixes and to the actions it performs.',
    );

    this.rule = new events.Rule(this, 'Schedule', {
      description: `${props.registryName}: starts the maintenance run`,
      schedule: events.Schedule.expression(props.schedule),
      targets: [
        new targets.LambdaFunction(this.function.handler, {
          // Lambda accepts an asynchronous invocation at once (the run's own failures are not
          // EventBridge's to retry); a few attempts cover a brief Lambda service error.
          retryAttempts: 2,
          maxEventAge: Duration.hours(1),
        }),
      ],
    });
  }
}
