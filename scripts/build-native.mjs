// Builds the optional native block reader (native/block-reader.c) with node-gyp,
// which npm ships. Without a C compiler (or Node's headers, which node-gyp
// downloads when Node's installation has none) the build fails and ringkv works as
// before: compressed blocks are then decompressed on the event loop
// (src/storage/sstable/native-reader.ts). RINGKV_REQUIRE_NATIVE=1 makes a
// failed build fail the install (CI, where the compiler is known to be there).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

const require = createRequire(import.meta.url);
// npm tells its scripts where its node-gyp is; otherwise try one on the PATH.
const gyp = process.env.npm_config_node_gyp;
const gypArgs = ['rebuild', '--loglevel=warn'];
// Node's own headers, where its installation has them (include/node beside bin/node): then node-gyp
// needs no download.
const nodeDir = resolve(dirname(process.execPath), '..');
if (existsSync(join(nodeDir, 'include', 'node', 'node_api.h'))) gypArgs.push(`--nodedir=${nodeDir}`);
const [command, args] = gyp ? [process.execPath, [gyp, ...gypArgs]] : ['node-gyp', gypArgs];
// Bounded: node-gyp may try to download Node's headers when it finds none, and a closed network must
// not hang the install.
const result = spawnSync(command, args, {
  stdio: ['ignore', 'ignore', 'inherit'],
  timeout: 300_000,
  killSignal: 'SIGKILL',
});
if (result.error) console.error(`ringkv: node-gyp did not run: ${result.error.message}`);
let loaded = false;
if (result.status === 0) {
  try {
    require('../build/Release/block_reader.node');
    loaded = true;
  } catch (err) {
    console.error(`ringkv: the native block reader built but does not load: ${err.message}`);
  }
}
if (loaded) {
  console.log('ringkv: native block reader built (build/Release/block_reader.node)');
} else {
  console.error(
    "ringkv: could not build the native block reader (needs python3, make, a C compiler and Node's headers); " +
      'compressed blocks will be decompressed on the event loop instead',
  );
  if (process.env.RINGKV_REQUIRE_NATIVE === '1') process.exit(1);
}
