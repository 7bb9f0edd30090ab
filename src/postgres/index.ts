/**
 * PostgreSQL session store (`nestjs-sessions/postgres`). Needs the optional peer dependency `pg`.
 * @example
 * import { PostgresSessionStore } from 'nestjs-sessions/postgres';
 */
export {
  PostgresSessionStore,
  postgresSessionSchema,
  type PostgresSessionStoreOptions,
  type PostgresSessionSchemaOptions,
} from '../stores/postgres-session.store.js';
