export * from './entry.js';
export * from './version.js';
export * from './codec.js';
