import { BadRequestException, Body, Controller, Get, HttpCode, Post } from '@nestjs/common';
import { Session, SessionLock } from 'nestjs-sessions';
import type { AppSession } from '../session-data.js';
import { CatalogService } from './catalog.service.js';

/** A shopping cart kept in the session. */
@Controller('cart')
export class CartController {
  constructor(private readonly catalog: CatalogService) {}

  /** Read-modify-write of one key: @SessionLock() makes concurrent adds take turns, so none is lost. */
  @Post('items')
  @HttpCode(200)
  @SessionLock()
  async add(@Body() body: { item?: unknown } | undefined, @Session() session: Session<AppSession>) {
    const item = body?.item;
    if (typeof item !== 'string' || item.length === 0 || item.length > 200) {
      throw new BadRequestException('Send JSON {"item": "<name>"}');
    }
    const cart = session.data.cart ?? [];
    // Real handlers await something between reading and writing the session.
    await this.catalog.lookup(item);
    session.data.cart = [...cart, item];
    return { items: session.data.cart };
  }

  @Get()
  list(@Session() session: Session<AppSession>) {
    return { items: session.data.cart ?? [] };
  }
}
