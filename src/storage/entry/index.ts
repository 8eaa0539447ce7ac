export * from './codec.js';
export * from './entry.js';
export * from './version.js';
