import { MemoryEngine } from '../../src/storage/memory-engine.js';
import { engineSuite } from './engine-suite.js';

engineSuite({
  name: 'MemoryEngine',
  supports: { persistence: false },
  async create() {
    const engine = new MemoryEngine();
    return { engine, dispose: () => engine.close() };
  },
});
