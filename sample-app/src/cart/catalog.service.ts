import { Injectable } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';

/** A stand-in for a product catalog behind a network call: answers after a few milliseconds. */
@Injectable()
export class CatalogService {
  async lookup(item: string): Promise<{ item: string; available: boolean }> {
    await sleep(3);
    return { item, available: true };
  }
}
