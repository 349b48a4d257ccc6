/** The fake IdPs serve on 127.0.0.1 as the demo's IdP does. */
export { LoopbackServer } from '../../src/demo/loopback-server.js';
