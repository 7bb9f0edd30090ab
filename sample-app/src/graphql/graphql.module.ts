import { Module, type DynamicModule } from '@nestjs/common';
import { GraphQLModule } from '@nestjs/graphql';
import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { MercuriusDriver, type MercuriusDriverConfig } from '@nestjs/mercurius';
import type { SampleConfig } from '../config.js';
import { ViewerResolver } from './viewer.resolver.js';

/** `/graphql`: Apollo on Express, Mercurius on Fastify, the same resolver and sessions on both. */
@Module({})
export class SampleGraphQLModule {
  static register(config: SampleConfig): DynamicModule {
    const graphql =
      config.adapter === 'fastify'
        ? GraphQLModule.forRoot<MercuriusDriverConfig>({
            driver: MercuriusDriver,
            autoSchemaFile: true,
          })
        : GraphQLModule.forRoot<ApolloDriverConfig>({
            driver: ApolloDriver,
            autoSchemaFile: true,
            context: ({ req, res }: { req: unknown; res: unknown }) => ({ req, res }),
          });
    return { module: SampleGraphQLModule, imports: [graphql], providers: [ViewerResolver] };
  }
}
