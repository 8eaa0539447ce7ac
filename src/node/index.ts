/** The node package: one ringkv node assembled from its parts, with one start and stop order. */
export { Node, type NodeSettings } from './node.js';
