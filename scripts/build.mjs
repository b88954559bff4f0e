// `npm run build`: what the installed package runs, so that nothing from devDependencies (tsx,
// esbuild) is loaded at run time.
//   dist/            src/ compiled by tsc (tsconfig.build.json), same layout as src/
//   dist/panel/ui/   the panel's static files and its browser module, bundled once here by esbuild
// The native FUSE addon is not built here: the package builds it on install (scripts/build-native-fuse.sh).
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const log = (m) => process.stderr.write(`[build] ${m}\n`);

rmSync(dist, { recursive: true, force: true });
log('tsc -p tsconfig.build.json');
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });

const ui = join(dist, 'panel/ui');
mkdirSync(ui, { recursive: true });
for (const f of ['index.html', 'style.css']) copyFileSync(join(root, 'src/panel/ui', f), join(ui, f));
log('esbuild src/panel/ui/app.ts -> dist/panel/ui/app.js');
const { build } = await import('esbuild');
// the same options src/panel/ui.ts uses when it bundles from the sources
await build({ entryPoints: [join(root, 'src/panel/ui/app.ts')], bundle: true, format: 'esm', target: 'es2022', minify: false, logLevel: 'warning', outfile: join(ui, 'app.js') });
log('done');
