/**
 * The injection token of the {@link SharedSessionClient} registered under `name`, for
 * `moduleRef.get(...)`, `@Inject(...)` or overriding the client in tests.
 * @example Test.createTestingModule({ ... }).overrideProvider(getSharedSessionToken('crm')).useValue(fake)
 */
export function getSharedSessionToken(name: string): string {
  return `nestjs-sessions:SharedSessionClient:${name}`;
}
