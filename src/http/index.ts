/** The HTTP package's public face: the server and the pieces the cluster may reuse. */
export { type ErrorAnswer, errorAnswer } from './errors.js';
export {
  decodeComponent,
  type EntityParams,
  type ParamLimits,
  parseEntityParams,
  parseRangeParams,
  quorum,
  type RangeFormat,
  type RangeParams,
  type RangeScope,
} from './params.js';
export { RequestMetrics, RequestOp } from './request-metrics.js';
export type { Readiness } from './routes/health.js';
export {
  checkListenable,
  fastPathFromEnv,
  HttpServer,
  type HttpServerOptions,
  type RequestHandler,
  type UpgradeHandler,
} from './server.js';
