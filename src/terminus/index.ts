/**
 * `nestjs-sessions/terminus`: a `@nestjs/terminus` health indicator for the session store. Kept
 * out of the core entry point so that apps without Terminus never load it.
 * @example import { SessionHealthIndicator } from 'nestjs-sessions/terminus';
 */
export {
  SessionHealthIndicator,
  type SessionHealthCheckOptions,
} from './session-health.indicator.js';
