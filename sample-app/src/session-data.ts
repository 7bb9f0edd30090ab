/** What the sample app keeps in a session. */
export interface AppSession {
  userId?: string;
  username?: string;
  role?: 'user' | 'admin';
  userAgent?: string;
  test_counter?: number;
  cart?: string[];
}
