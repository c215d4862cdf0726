import { jsonResponse } from '../responses.js';
import type { Endpoint } from './context.js';

/** end-1: the API version check every client starts with. */
export const checkApiVersion: Endpoint = async () => jsonResponse(200, {});
