import { Histogram } from 'prom-client';

/** SCIM requests this process answered, by method, resource type and status; /metrics of the same process shows them. */
export const scimRequestDuration = new Histogram({
  name: 'dirsync_scim_request_duration_seconds',
  help: 'SCIM requests answered by this process, by method, resource type and status',
  labelNames: ['method', 'resource', 'status'],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers: [],
});
