// The e2e-fastify Jest project: the fixture apps of this run start on Fastify.
process.env.SESSION_TEST_ADAPTER = 'fastify';
