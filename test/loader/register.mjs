// `node --import ./test/loader/register.mjs` (tap passes it through .taprc's node-arg): installs hooks.mjs, which
// serves each TypeScript file's JavaScript from a cache shared by every test process. Node applies the hook
// registered last first, so these hooks answer before tap's ts-node loader, which stays as the fallback for
// anything they pass on.
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
