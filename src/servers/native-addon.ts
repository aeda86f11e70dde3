import { createRequire } from 'node:module';

/**
 * Loads one of lexa's native addons (native/*.c, built by scripts/build-native.mjs) once per path: the module when
 * it has every function in `methods`, else the reason it cannot be used (not built, another platform or ABI, a
 * symbol this Node does not export, or a file that is not that addon). Callers fall back to Node's own stack.
 */
const loaded = new Map<string, unknown>();

export function loadAddon<T>(path: string, name: string, methods: readonly string[]): T | Error {
  let addon = loaded.get(path);
  if (addon === undefined) {
    try {
      const mod = createRequire(import.meta.url)(path) as Record<string, unknown>;
      addon = methods.every((m) => typeof mod[m] === 'function') ? mod : new Error(`${path}: not lexa's ${name} addon`);
    } catch (err) {
      addon = err instanceof Error ? err : new Error(String(err));
    }
    loaded.set(path, addon);
  }
  return addon as T | Error;
}
