import type { Redis } from 'ioredis';
import { type Config, loadConfig } from '../config.js';
import { type Db, createDb } from '../db/database.js';
import { type Logger, createLogger } from '../log.js';
import { UserError } from '../errors.js';
import type { DirsyncQueue } from '../queue/queue.js';

/**
 * What a command needs, opened on first use and closed once at exit, so `dirsync tenant list`
 * never connects to Redis and a bad REDIS_URL only matters to commands that queue.
 */
export class CliContext {
  readonly config: Config;
  readonly log: Logger;
  private dbInstance: Db | undefined;
  private redisInstance: Redis | undefined;
  private queueInstance: DirsyncQueue | undefined;

  constructor(options: { logLevel?: string } = {}) {
    this.config = loadConfig();
    this.log = createLogger(options.logLevel ?? this.config.logLevel);
  }

  get db(): Db {
    this.dbInstance ??= createDb(this.config.databaseUrl);
    return this.dbInstance;
  }

  /** Redis, connecting on first use (ioredis and BullMQ load only then: most commands never queue, and every CLI start pays for what it loads). */
  async redis(): Promise<Redis> {
    if (!this.redisInstance) {
      const { createRedis } = await import('../queue/redis.js');
      this.redisInstance = createRedis(this.config.redisUrl, 'client');
      // Connection errors surface on the command that needed Redis; do not also log them.
      this.redisInstance.on('error', () => {});
    }
    return this.redisInstance;
  }

  /**
   * The queue, once Redis answers. BullMQ would otherwise wait for a connection forever; a
   * command says within seconds that Redis is unreachable instead.
   */
  async queue(): Promise<DirsyncQueue> {
    const redis = await this.redis();
    if (redis.status !== 'ready') {
      await new Promise<void>((resolve, reject) => {
        const fail = () => {
          clearTimeout(timer);
          reject(new UserError(`cannot connect to Redis at ${safeUrl(this.config.redisUrl)}: is it running, and is REDIS_URL right?`));
        };
        // A refused connection fails at once; one that hangs, after 5 seconds.
        const timer = setTimeout(fail, 5_000);
        redis.once('error', fail);
        redis.once('ready', () => {
          clearTimeout(timer);
          redis.off('error', fail);
          resolve();
        });
      });
    }
    if (!this.queueInstance) {
      const { createQueue } = await import('../queue/queue.js');
      this.queueInstance = createQueue(this.config.queueName, redis);
      this.queueInstance.on('error', () => {});
    }
    return this.queueInstance;
  }

  async close(): Promise<void> {
    await this.queueInstance?.close().catch(() => {});
    this.redisInstance?.disconnect();
    await this.dbInstance?.destroy().catch(() => {});
  }
}

/** The URL without its password, for messages. */
function safeUrl(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}
