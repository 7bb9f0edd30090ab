import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { SessionModuleOptions } from './interfaces/session-options.interface.js';

export const {
  ConfigurableModuleClass: ConfigurableSessionModule,
  MODULE_OPTIONS_TOKEN: SESSION_MODULE_OPTIONS,
  OPTIONS_TYPE: SESSION_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: SESSION_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<SessionModuleOptions>({ moduleName: 'Session' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createSessionOptions')
  .setExtras({ isGlobal: true }, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal,
  }))
  .build();
