/* global module */
/**
 * The dependency rules of ARCHITECTURE.md, checked by `npm run lint`: one named rule per rule there.
 * Type-only imports count (tsPreCompilationDeps), so a cycle through `import type` fails too.
 */
module.exports = {
  forbidden: [
    {
      name: '1-leaves-import-nothing',
      comment:
        'interfaces/, session.errors.ts and session.constants.ts import nothing else from src/.',
      severity: 'error',
      from: { path: '^src/(interfaces/|session\\.errors\\.ts$|session\\.constants\\.ts$)' },
      to: { path: '^src/', pathNot: '^src/interfaces/' },
    },
    {
      name: '2-transport-is-pure',
      comment: 'transport/ never imports core/, http/, stores/ or @nestjs/*.',
      severity: 'error',
      from: { path: '^src/transport/' },
      to: { path: '^src/(core|http|stores)/|@nestjs/' },
    },
    {
      name: '3-stores-know-storage-only',
      comment:
        "stores/ import only interfaces/, session.errors.ts, utils/ and each other: storage keys and JSON texts, never cookies, tokens, the engine or Nest (Nest's Logger excepted, for the outage log lines).",
      severity: 'error',
      from: { path: '^src/stores/', pathNot: '\\.spec\\.ts$' },
      to: {
        path: '^src/|@nestjs/',
        pathNot: '^src/(interfaces/|session\\.errors\\.ts$|stores/|utils/)|@nestjs/common/index',
      },
    },
    {
      name: '4-core-knows-no-framework',
      comment: 'core/ never imports @nestjs/*, node:http, http/ or a concrete store.',
      severity: 'error',
      from: { path: '^src/core/', pathNot: '\\.spec\\.ts$' },
      to: { path: '@nestjs/|^http$|^node:http$|^src/http/|^src/stores/' },
    },
    {
      name: '5-http-knows-no-nest',
      comment:
        'http/ never imports @nestjs/* (symbol-keyed request state lives in http/request-session.ts alone).',
      severity: 'error',
      from: { path: '^src/http/' },
      to: { path: '@nestjs/' },
    },
    {
      name: '6-nest-internals-in-one-place',
      comment:
        'Only session.routes.ts and session.metadata.ts deep-import @nestjs/common internals.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(session\\.routes|session\\.metadata)\\.ts$' },
      to: { path: '@nestjs/common/(constants|enums|utils|decorators)' },
    },
    {
      name: '7-guards-do-not-import-guards',
      comment: 'Guards never import each other; what they share lives in session.context.ts.',
      severity: 'error',
      from: { path: '^src/[a-z.-]*guard\\.ts$' },
      to: { path: '^src/[a-z.-]*guard\\.ts$' },
    },
    {
      name: '8-no-test-code-in-production',
      comment: 'Production files never import testing/ or test/; unit specs never import test/.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/testing/|\\.spec\\.ts$' },
      to: { path: '^src/testing/|^test/' },
    },
    {
      name: '8b-engine-unit-specs-need-nothing-from-test',
      comment:
        'The unit specs of the engine, the transport and the http layer import nothing from test/ (store specs next to their stores share test/support to reach the real servers).',
      severity: 'error',
      from: { path: '^src/(core|transport|http|utils)/.*\\.spec\\.ts$' },
      to: { path: '^test/' },
    },
    {
      name: '9-no-cycles',
      comment: 'No import cycles, type-only imports included.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: '10-no-graphql-at-runtime',
      comment:
        'GraphQL support reads metadata strings and the context type only: src/ never imports @nestjs/graphql, graphql, Apollo or Mercurius, which are not dependencies of the package.',
      severity: 'error',
      from: { path: '^src/', pathNot: '\\.spec\\.ts$' },
      to: {
        path: '(^|/)node_modules/(@nestjs/(graphql|apollo|mercurius)|graphql|@apollo|mercurius)(/|$)|^(@nestjs/(graphql|apollo|mercurius)|graphql|@apollo/[^/]+|mercurius)$',
      },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^src/.*\\.d\\.ts$' },
  },
};
