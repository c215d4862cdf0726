import { jsonResponse } from '../responses.js';
import type { Endpoint } from './context.js';

/**
 * `GET|HEAD /health`, for load balancers and monitors: no login, 200 when the metadata table and
 * the blob bucket both answer, else 503, with a short JSON status either way:
 * `{"status":"ok","checks":{"metadata":{"status":"ok","ms":4},"blobs":{"status":"ok","ms":7}}}`.
 */
export const checkHealth: Endpoint = async ({ services }) => {
  const report = await services.health.check();
  return jsonResponse(report.status === 'ok' ? 200 : 503, report, { 'Cache-Control': 'no-store' });
};
