import { Redis } from 'ioredis';

/**
 * Workers block on Redis and must wait through outages (maxRetriesPerRequest: null, as
 * BullMQ requires); short-lived commands fail fast instead, so a CLI call or a webhook
 * answers with a clear error while Redis is away.
 */
export function createRedis(url: string, role: 'worker' | 'client'): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: role === 'worker' ? null : 2,
    enableOfflineQueue: role === 'worker',
    connectTimeout: 5_000,
    lazyConnect: false,
    // Keep reconnecting forever, backing off to 2 s.
    retryStrategy: (times) => Math.min(times * 100, 2_000),
  });
}
