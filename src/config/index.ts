export {
  ConfigError,
  LXD_SOCKETS,
  defaultConfig,
  defaultSocket,
  findConfigFile,
  fromParsed,
  loadConfig,
  parseHcl,
} from './load.js';
export { parseDuration } from './builder.js';
export type * from './types.js';
