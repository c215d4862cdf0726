import { Duration } from 'aws-cdk-lib';
import type * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';

/** Custom metrics the registry function emits in CloudWatch embedded metric format. */
export const REGISTRY_METRICS_NAMESPACE = 'OciRegistry';
export const REGISTRY_METRIC_NAMES = ['Pushes', 'Pulls', 'BytesRedirected', 'Errors'] as const;
export const REGISTRY_METRIC_DIMENSION = 'Operation';

/** Below this many requests in five minutes a 5xx percentage says little (one error in two requests is 50%). */
export const SERVER_ERROR_RATE_MIN_REQUESTS = 20;

const PERIOD = Duration.minutes(5);

export interface RegistryObservabilityProps {
  /** Dashboards are account-wide, so the name carries the region for replica stacks. */
  readonly dashboardName: string;
  readonly httpApi: apigwv2.IHttpApi;
  readonly registryFunction: lambda.IFunction;
  /** The table (or the local global table replica) the function reads. */
  readonly tableName: string;
  readonly serverErrorRateAlarmPercent: number;
  /** Subscribed to an SNS topic that receives every alarm and recovery. */
  readonly alarmEmail?: string;
  /** Regions with a global table replica, for a replication latency graph (primary region only). */
  readonly tableReplicaRegions?: readonly string[];
  /** The Docker token endpoint (primary region only). */
  readonly tokenFunction?: lambda.IFunction;
  /** The scheduled maintenance run (primary region only); a failed run raises an alarm. */
  readonly maintenanceFunction?: lambda.IFunction;
}

/**
 * A CloudWatch dashboard and alarms for one region's registry API: API Gateway traffic, errors
 * and latency, the function's errors, throttles and duration, DynamoDB throttling, and the
 * registry's own EMF metrics per operation.
 */
export class RegistryObservability extends Construct {
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarms: cloudwatch.Alarm[];
  readonly alarmTopic?: sns.Topic;

  constructor(scope: Construct, id: string, props: RegistryObservabilityProps) {
    super(scope, id);
    const { httpApi, registryFunction } = props;

    const requests = httpApi.metricCount({ period: PERIOD, statistic: 'Sum', label: 'Requests' });
    const clientErrors = httpApi.metricClientError({ period: PERIOD, statistic: 'Sum', label: '4xx' });
    const serverErrors = httpApi.metricServerError({ period: PERIOD, statistic: 'Sum', label: '5xx' });
    const tableThrottles = new cloudwatch.MathExpression({
      expression: 'FILL(readThrottles, 0) + FILL(writeThrottles, 0)',
      usingMetrics: {
        readThrottles: this.tableMetric(props.tableName, 'ReadThrottleEvents'),
        writeThrottles: this.tableMetric(props.tableName, 'WriteThrottleEvents'),
      },
      period: PERIOD,
      label: 'Throttled DynamoDB requests',
    });

    this.alarms = [
      new cloudwatch.Alarm(this, 'ServerErrorRateAlarm', {
        alarmDescription: `More than ${props.serverErrorRateAlarmPercent}% of registry API requests answered 5xx (in 2 of 3 five-minute periods with at least ${SERVER_ERROR_RATE_MIN_REQUESTS} requests). Check the function's logs and the access log.`,
        metric: new cloudwatch.MathExpression({
          expression: `IF(requests >= ${SERVER_ERROR_RATE_MIN_REQUESTS}, 100 * FILL(serverErrors, 0) / requests, 0)`,
          usingMetrics: { requests, serverErrors },
          period: PERIOD,
          label: '5xx rate (%)',
        }),
        threshold: props.serverErrorRateAlarmPercent,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      this.anyInFiveMinutes(
        'FunctionErrorsAlarm',
        'The registry function failed (unhandled error or timeout); clients saw a 5xx. Check its log group.',
        registryFunction.metricErrors({ period: PERIOD, statistic: 'Sum' }),
      ),
      this.anyInFiveMinutes(
        'FunctionThrottlesAlarm',
        'The registry function was throttled: raise its reserved concurrency or the account concurrency quota.',
        registryFunction.metricThrottles({ period: PERIOD, statistic: 'Sum' }),
      ),
      this.anyInFiveMinutes(
        'TableThrottlesAlarm',
        'DynamoDB throttled registry requests (hot partition or on-demand scaling); clients may have seen TOOMANYREQUESTS or 5xx.',
        tableThrottles,
      ),
    ];
    if (props.maintenanceFunction) {
      this.alarms.push(
        this.anyInFiveMinutes(
          'MaintenanceErrorsAlarm',
          'The scheduled maintenance run (retention, then garbage collection) failed or timed out; it is not retried before its next schedule. Check its log group.',
          props.maintenanceFunction.metricErrors({ period: PERIOD, statistic: 'Sum' }),
        ),
      );
    }

    if (props.alarmEmail) {
      this.alarmTopic = new sns.Topic(this, 'AlarmTopic', {
        displayName: `${props.dashboardName} alarms`,
        enforceSSL: true,
      });
      this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
      const notify = new actions.SnsAction(this.alarmTopic);
      for (const alarm of this.alarms) {
        alarm.addAlarmAction(notify);
        alarm.addOkAction(notify);
      }
    }

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName,
      defaultInterval: Duration.hours(3),
    });
    this.dashboard.addWidgets(new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24, height: 3 }));
    this.dashboard.addWidgets(
      graph('API requests', [requests]),
      graph('API errors', [clientErrors, serverErrors]),
      graph('API latency (ms)', [
        httpApi.metricLatency({ period: PERIOD, statistic: 'p50', label: 'Latency p50' }),
        httpApi.metricLatency({ period: PERIOD, statistic: 'p99', label: 'Latency p99' }),
        httpApi.metricIntegrationLatency({ period: PERIOD, statistic: 'p99', label: 'Integration latency p99' }),
      ]),
    );
    this.dashboard.addWidgets(
      graph('Function invocations, errors, throttles', [
        registryFunction.metricInvocations({ period: PERIOD, statistic: 'Sum', label: 'Invocations' }),
        registryFunction.metricErrors({ period: PERIOD, statistic: 'Sum', label: 'Errors' }),
        registryFunction.metricThrottles({ period: PERIOD, statistic: 'Sum', label: 'Throttles' }),
      ]),
      graph('Function duration (ms)', [
        registryFunction.metricDuration({ period: PERIOD, statistic: 'p50', label: 'p50' }),
        registryFunction.metricDuration({ period: PERIOD, statistic: 'p99', label: 'p99' }),
        registryFunction.metricDuration({ period: PERIOD, statistic: 'Maximum', label: 'Maximum' }),
      ]),
      graph('Function concurrency', [
        registryFunction.metric('ConcurrentExecutions', { period: PERIOD, statistic: 'Maximum', label: 'Concurrent executions' }),
      ]),
    );
    const { tokenFunction, maintenanceFunction } = props;
    if (tokenFunction || maintenanceFunction) {
      this.dashboard.addWidgets(
        ...(tokenFunction
          ? [
              graph('Token endpoint invocations, errors', [
                tokenFunction.metricInvocations({ period: PERIOD, statistic: 'Sum', label: 'Invocations' }),
                tokenFunction.metricErrors({ period: PERIOD, statistic: 'Sum', label: 'Errors' }),
              ]),
            ]
          : []),
        ...(maintenanceFunction
          ? [
              graph('Maintenance runs, errors', [
                maintenanceFunction.metricInvocations({ period: PERIOD, statistic: 'Sum', label: 'Runs' }),
                maintenanceFunction.metricErrors({ period: PERIOD, statistic: 'Sum', label: 'Errors' }),
              ]),
              graph('Maintenance run duration (ms)', [
                maintenanceFunction.metricDuration({ period: PERIOD, statistic: 'Maximum', label: 'Duration' }),
              ]),
            ]
          : []),
      );
    }
    const tableWidgets = [
      graph('DynamoDB throttles', [
        this.tableMetric(props.tableName, 'ReadThrottleEvents', 'Read throttle events'),
        this.tableMetric(props.tableName, 'WriteThrottleEvents', 'Write throttle events'),
      ]),
      graph('DynamoDB consumed capacity units', [
        this.tableMetric(props.tableName, 'ConsumedReadCapacityUnits', 'Read'),
        this.tableMetric(props.tableName, 'ConsumedWriteCapacityUnits', 'Write'),
      ]),
    ];
    const replicaRegions = props.tableReplicaRegions ?? [];
    if (replicaRegions.length > 0) {
      tableWidgets.push(
        graph(
          'Global table replication latency (ms)',
          replicaRegions.map(
            (region) =>
              new cloudwatch.Metric({
                namespace: 'AWS/DynamoDB',
                metricName: 'ReplicationLatency',
                dimensionsMap: { TableName: props.tableName, ReceivingRegion: region },
                period: PERIOD,
                statistic: 'Average',
                label: region,
              }),
          ),
        ),
      );
    }
    this.dashboard.addWidgets(...tableWidgets);
    // The function chooses the Operation values, so the graphs search for whatever it emitted.
    this.dashboard.addWidgets(
      ...REGISTRY_METRIC_NAMES.map((metricName) => graph(`${metricName} by operation`, [registryMetricSearch(metricName)], 6)),
    );
  }

  /** An alarm on any occurrence within one five-minute period: errors and throttles should not happen at all. */
  private anyInFiveMinutes(id: string, alarmDescription: string, metric: cloudwatch.IMetric): cloudwatch.Alarm {
    return new cloudwatch.Alarm(this, id, {
      alarmDescription,
      metric,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  private tableMetric(tableName: string, metricName: string, label?: string): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'AWS/DynamoDB',
      metricName,
      dimensionsMap: { TableName: tableName },
      period: PERIOD,
      statistic: 'Sum',
      label,
    });
  }
}

function graph(title: string, left: cloudwatch.IMetric[], width = 8): cloudwatch.GraphWidget {
  return new cloudwatch.GraphWidget({ title, left, width, height: 6 });
}

/** All series of one registry metric, one per `Operation` value. */
function registryMetricSearch(metricName: string): cloudwatch.MathExpression {
  return new cloudwatch.MathExpression({
    expression: `SEARCH('{${REGISTRY_METRICS_NAMESPACE},${REGISTRY_METRIC_DIMENSION}} MetricName="${metricName}"', 'Sum', ${PERIOD.toSeconds()})`,
    usingMetrics: {},
    label: metricName,
    period: PERIOD,
  });
}
