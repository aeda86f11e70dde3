export { ConfigError, DEFAULTS, LXD_SOCKETS, defaultSocket, findConfigFile, fromParsed, loadConfig } from './load.js';
export { parseDuration } from './schema.js';
export type * from './types.js';
