#!/usr/bin/env node
// The `livemr` command. The installed package runs the compiled dist/ (`npm run build`, done by
// `npm pack`); it has no TypeScript sources and no devDependencies. A git checkout has the sources and
// runs them through tsx (a dev dependency), so tests and the demo never run a stale build.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
let main;
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import(source.href));
} else {
  ({ main } = await import('../dist/cli/main.js'));
}
process.exitCode = await main(process.argv.slice(2));
