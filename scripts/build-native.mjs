// Builds the optional native block reader (native/block-reader.c) with node-gyp,
// which npm ships. Without a C compiler the build fails and ringkv works as
// before: compressed blocks are then decompressed on the event loop
// (src/storage/sstable/native-reader.ts). RINGKV_REQUIRE_NATIVE=1 makes a
// failed build fail the install (CI, where the compiler is known to be there).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// npm tells its scripts where its node-gyp is; otherwise try one on the PATH.
const gyp = process.env.npm_config_node_gyp;
const [command, args] = gyp
  ? [process.execPath, [gyp, 'rebuild', '--loglevel=warn']]
  : ['node-gyp', ['rebuild', '--loglevel=warn']];
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
    'ringkv: could not build the native block reader (needs python3, make and a C compiler); ' +
      'compressed blocks will be decompressed on the event loop instead',
  );
  if (process.env.RINGKV_REQUIRE_NATIVE === '1') process.exit(1);
}
