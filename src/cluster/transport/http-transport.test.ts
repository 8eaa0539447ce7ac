import { HttpTransport } from './http-transport.js';
import { transportSuite } from './transport.suite.js';

transportSuite('HttpTransport', { create: (options) => new HttpTransport(options) });
