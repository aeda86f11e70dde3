#!/usr/bin/env node
// @matrixai/quic 2.0.9 lists optional native packages for darwin and win32 that were never published at 2.0.9
// (only @matrixai/quic-linux-x64 was). npm install leaves them out of package-lock.json, and then `npm ci`
// refuses the lock file ("Missing: @matrixai/quic-darwin-arm64@ from lock file"). This records them the way npm
// records other platforms' optional packages (os/cpu set, so npm skips them here) and keeps `npm ci` working.
// Idempotent; run it after any `npm install` that rewrites the lock file.
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const quic = lock.packages['node_modules/@matrixai/quic'];
if (!quic) throw new Error('package-lock.json has no @matrixai/quic');
const platforms = { 'darwin-arm64': [['darwin'], ['arm64']], 'darwin-universal': [['darwin'], ['x64', 'arm64']], 'darwin-x64': [['darwin'], ['x64']], 'win32-x64': [['win32'], ['x64']] };
let added = 0;
for (const [name, [os, cpu]] of Object.entries(platforms)) {
  const key = `node_modules/@matrixai/quic-${name}`;
  const version = quic.optionalDependencies?.[`@matrixai/quic-${name}`];
  if (!version || lock.packages[key]) continue;
  lock.packages[key] = { version, cpu, license: 'Apache-2.0', optional: true, os };
  added++;
}
const keys = Object.keys(lock.packages).sort((a, b) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0));
lock.packages = Object.fromEntries(keys.map((k) => [k, lock.packages[k]]));
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`fix-lock: ${added} placeholder entr${added === 1 ? 'y' : 'ies'} added`);
