import { Injectable } from '@nestjs/common';
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const scryptAsync = promisify(scrypt) as (pw: string, salt: Buffer, len: number) => Promise<Buffer>;

/** A user of the sample app. */
export interface User {
  id: string;
  username: string;
  role: 'user' | 'admin';
}

interface StoredUser extends User {
  salt: Buffer;
  hash: Buffer;
}

const DEMO_USERS = [
  { id: '1', username: 'alice', role: 'user', password: 'wonderland' },
  { id: '2', username: 'admin', role: 'admin', password: 'admin-secret' },
] as const;

/**
 * The sample's user repository: two demo users whose passwords are kept only as scrypt hashes.
 * A real app would read them from its database.
 */
@Injectable()
export class UsersRepository {
  private readonly users: Promise<Map<string, StoredUser>> = this.seed();

  /** The user, when the password matches; `undefined` otherwise (same work either way). */
  async verify(username: string, password: string): Promise<User | undefined> {
    const users = await this.users;
    const user = users.get(username);
    const salt = user?.salt ?? randomBytes(16);
    const hash = await scryptAsync(password, salt, 32);
    if (!user || !timingSafeEqual(hash, user.hash)) return undefined;
    return { id: user.id, username: user.username, role: user.role };
  }

  private async seed(): Promise<Map<string, StoredUser>> {
    const users = new Map<string, StoredUser>();
    for (const { password, ...user } of DEMO_USERS) {
      const salt = randomBytes(16);
      users.set(user.username, { ...user, salt, hash: await scryptAsync(password, salt, 32) });
    }
    return users;
  }
}
