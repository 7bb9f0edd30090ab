import { Args, Field, Mutation, ObjectType, Query, Resolver } from '@nestjs/graphql';
import { RequireSession, Session } from 'nestjs-sessions';
import type { AppSession } from '../session-data.js';

/** Who the session belongs to. */
@ObjectType()
export class Viewer {
  @Field(() => String, { nullable: true })
  username?: string;

  @Field(() => String, { nullable: true })
  role?: string;

  @Field(() => [String])
  cart!: string[];
}

/**
 * `POST /graphql`: `{ whoami { username role cart } }` for a logged-in session (error code
 * `UNAUTHENTICATED` without one), and `mutation { addToCart(item: "…") }`, committed with the
 * response, or not at all when the resolver fails.
 */
@Resolver(() => Viewer)
export class ViewerResolver {
  @Query(() => Viewer)
  @RequireSession()
  whoami(@Session() session: Session<AppSession>): Viewer {
    const { username, role, cart } = session.data;
    return { username, role, cart: cart ?? [] };
  }

  @Mutation(() => [String])
  @RequireSession()
  addToCart(@Args('item') item: string, @Session() session: Session<AppSession>): string[] {
    const name = item.trim();
    if (name.length === 0 || name.length > 100) throw new Error('An item is 1 to 100 characters');
    session.data.cart = [...(session.data.cart ?? []), name];
    return session.data.cart;
  }
}
