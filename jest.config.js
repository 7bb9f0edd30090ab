/**
 * Jest in ESM mode (Nest 12 is ESM-only): see README "Development". Three projects, all run by
 * `npm test` (scripts/test.mjs): unit specs next to the code (no services), the e2e specs on Express, and the e2e
 * specs that boot the fixture app again on Fastify.
 */
const shared = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: {
    '^nestjs-sessions$': '<rootDir>/src/index.ts',
    '^nestjs-sessions/(.*)$': '<rootDir>/src/$1/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
    // Mercurius loads @fastify/static, whose content-disposition 3 is ESM-only: Jest's require()
    // cannot load that before Node 24.9. Version 2 (Express's, CommonJS) has the same `create`.
    '^content-disposition$': '<rootDir>/node_modules/content-disposition/dist/index.js',
  },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true }] },
};

/** Specs that boot their own apps, or none (the sample app, instances, outages, upstream, the API, WebSockets). */
const EXPRESS_ONLY = [
  'graphql',
  'multi-instance',
  'passport',
  'postgres-outage',
  'public-api',
  'redis-failover',
  'redis-package-missing',
  'store-boot',
  'store-faults',
  'store-outage',
  'shutdown',
  'upstream',
  'websocket',
].map((name) => `/test/${name}\\.e2e-spec\\.ts$`);

const FAILOVER = '/test/redis-failover\\.e2e-spec\\.ts$';

export default {
  testTimeout: 30000,
  projects: [
    { ...shared, displayName: 'unit', roots: ['<rootDir>/src'], testRegex: '.*\\.spec\\.ts$' },
    {
      ...shared,
      displayName: 'e2e',
      roots: ['<rootDir>/test'],
      testRegex: '.*\\.e2e-spec\\.ts$',
      // scripts/test.mjs runs it in a Jest process of its own, after the rest.
      testPathIgnorePatterns: process.env.SESSION_TEST_FAILOVER_APART === '1' ? [FAILOVER] : [],
    },
    {
      ...shared,
      displayName: 'e2e-fastify',
      roots: ['<rootDir>/test'],
      testRegex: '.*\\.e2e-spec\\.ts$',
      testPathIgnorePatterns: EXPRESS_ONLY,
      setupFiles: ['<rootDir>/test/support/fastify-run.ts'],
    },
  ],
};
