import { Inject } from '@nestjs/common';
import { getSharedSessionToken } from './shared-session.constants.js';

/**
 * Injects the {@link SharedSessionClient} registered with `SharedSessionModule.register({ name })`.
 * @example constructor(@InjectSharedSession('crm') private readonly crm: SharedSessionClient) {}
 */
export function InjectSharedSession(name: string): PropertyDecorator & ParameterDecorator {
  return Inject(getSharedSessionToken(name));
}
