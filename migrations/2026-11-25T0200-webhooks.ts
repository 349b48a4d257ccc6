import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/** Webhook deliveries (what came in, and the run it triggered) and the event ids seen, to drop redeliveries. */
export async function up(db: Db): Promise<void> {
  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('integration_id', 'uuid', (c) => c.notNull().references('integrations.id').onDelete('cascade'))
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('source', 'text', (c) => c.notNull().check(sql`source in ('okta', 'authentik')`))
    .addColumn('event_types', sql`text[]`, (c) => c.notNull())
    .addColumn('event_ids', sql`text[]`, (c) => c.notNull())
    .addColumn('outcome', 'text', (c) => c.notNull().check(sql`outcome in ('triggered', 'ignored', 'duplicate')`))
    .addColumn('run_id', 'uuid')
    .addColumn('detail', 'text')
    .execute();
  await db.schema
    .createIndex('webhook_deliveries_integration_idx')
    .on('webhook_deliveries')
    .columns(['integration_id', 'received_at desc'])
    .execute();

  await db.schema
    .createTable('webhook_events')
    .addColumn('integration_id', 'uuid', (c) => c.notNull().references('integrations.id').onDelete('cascade'))
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('webhook_events_pkey', ['integration_id', 'event_id'])
    .execute();
  await db.schema.createIndex('webhook_events_received_idx').on('webhook_events').column('received_at').execute();
}

export async function down(db: Db): Promise<void> {
  await db.schema.dropTable('webhook_events').execute();
  await db.schema.dropTable('webhook_deliveries').execute();
}
