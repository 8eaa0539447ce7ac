/**
 * What one message over loopback TCP costs this machine, as a floor to set a
 * cluster request's CPU against.
 *
 * Two processes (the bench and a forked echo child) bounce a 64-byte message
 * back and forth over one TCP connection on 127.0.0.1, with Nagle off: each
 * message is one write() on one side and one wake-up and read() on the other,
 * as a request's frames and answers are when nothing batches them. The cost
 * of a message is the CPU time (user + system) of both processes over the
 * exchange divided by the number of messages. A ringkv PUT at `ack=2&from=3`
 * is six such messages when nothing batches them (client to coordinator, two
 * frames out, two answers back, coordinator to client), a GET four; the
 * client's side of two of them falls on the load generator.
 *
 * Run as a script with `echo`, this file is the echo child.
 */
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { forkChild, stopChild } from './procs.mjs';

const MESSAGE_BYTES = 64;
const DEFAULT_ROUND_TRIPS = 20_000;
const DEFAULT_TRIALS = 3;
const TRIAL_TIMEOUT_MS = 30_000;

/** One exchange of `roundTrips` round trips: wall time and CPU per message. */
async function trial(roundTrips) {
  const child = forkChild(fileURLToPath(import.meta.url), ['echo'], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  let socket = null;
  let timer;
  try {
    const port = await nextMessage(child, 'listening');
    socket = net.connect(port.port, '127.0.0.1');
    socket.setNoDelay(true);
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    child.send({ type: 'start' });
    await nextMessage(child, 'started');
    const message = Buffer.alloc(MESSAGE_BYTES, 1);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`loopback exchange exceeded ${TRIAL_TIMEOUT_MS} ms`)),
        TRIAL_TIMEOUT_MS,
      );
      let received = 0;
      let done = 0;
      socket.on('data', (chunk) => {
        received += chunk.length;
        // Reply per whole message that came back; TCP may split or join them.
        while (received >= MESSAGE_BYTES) {
          received -= MESSAGE_BYTES;
          if (++done === roundTrips) return resolve();
          socket.write(message);
        }
      });
      socket.once('error', reject);
      socket.write(message);
    });
    const wallMs = performance.now() - t0;
    const own = process.cpuUsage(cpu0);
    child.send({ type: 'stop' });
    const echo = await nextMessage(child, 'cpu');
    const cpuMicros = own.user + own.system + echo.user + echo.system;
    return {
      roundTripMicros: (wallMs * 1000) / roundTrips,
      cpuMicrosPerMessage: cpuMicros / (2 * roundTrips),
      systemShare: (own.system + echo.system) / cpuMicros,
    };
  } finally {
    clearTimeout(timer);
    socket?.destroy();
    await stopChild(child, 5000);
  }
}

/** The child's next IPC message of `type`; rejects if it exits or stays silent for TRIAL_TIMEOUT_MS. */
function nextMessage(child, type) {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
    };
    const onMessage = (msg) => {
      if (msg?.type !== type) return;
      done();
      resolve(msg);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`echo child sent no '${type}' within ${TRIAL_TIMEOUT_MS} ms`));
    }, TRIAL_TIMEOUT_MS);
    child.on('message', onMessage);
    child.exited.then(({ code, signal }) => {
      done();
      reject(new Error(`echo child exited (code ${code}, signal ${signal})`));
    });
  });
}

/**
 * `trials` exchanges. The figures are all those of one exchange, the one
 * with the median CPU per message: { roundTripMicros, cpuMicrosPerMessage,
 * systemShare, trials }.
 */
export async function measureLoopbackCost({
  roundTrips = DEFAULT_ROUND_TRIPS,
  trials = DEFAULT_TRIALS,
} = {}) {
  const runs = [];
  for (let i = 0; i < trials; i++) runs.push(await trial(roundTrips));
  const byCpu = [...runs].sort((a, b) => a.cpuMicrosPerMessage - b.cpuMicrosPerMessage);
  return { ...byCpu[Math.floor(byCpu.length / 2)], trials: runs };
}

function runEcho() {
  let cpu0 = null;
  const server = net.createServer((conn) => {
    conn.setNoDelay(true);
    conn.on('data', (chunk) => conn.write(chunk));
    conn.on('error', () => {});
  });
  server.listen(0, '127.0.0.1', () => process.send({ type: 'listening', port: server.address().port }));
  process.on('message', (msg) => {
    if (msg?.type === 'start') {
      cpu0 = process.cpuUsage();
      process.send({ type: 'started' });
    } else if (msg?.type === 'stop') {
      process.send({ type: 'cpu', ...process.cpuUsage(cpu0 ?? undefined) }, () => process.exit(0));
    }
  });
}

if (process.argv[2] === 'echo' && process.argv[1] === fileURLToPath(import.meta.url)) runEcho();
