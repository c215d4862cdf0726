/**
 * The `_aws` block of a CloudWatch Embedded Metric Format log line: `values` become metrics
 * of `namespace` under one dimension set, each in its unit from `units` (Count otherwise). The
 * line must also carry the dimension fields and the values themselves.
 */
export function emfBlock(namespace: string, dimensions: readonly string[], values: Record<string, number>, units: Record<string, string> = {}) {
  return {
    _aws: {
      Timestamp: Date.now(),
      CloudWatchMetrics: [
        {
          Namespace: namespace,
          Dimensions: [[...dimensions]],
          Metrics: Object.keys(values).map((name) => ({ Name: name, Unit: units[name] ?? 'Count' })),
        },
      ],
    },
  };
}
