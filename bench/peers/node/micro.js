// Node peer for the runner's micro-benchmarks: the same six measurements as zsync's
// `benches/green.rs`, on promises and async functions (Node runs them on one thread).
//
//   node micro.js spawn_join 7
//
// Prints `RESULT v0 v1 ...`: the first iteration (cold) then the warm ones, in the unit of the
// benchmark (ns per task, ns per yield, ns per round trip, ms total, KiB per parked task).
'use strict';
const fs = require('fs');

const YIELDS = 200;

function scaled(n) {
  const s = parseFloat(process.env.GB_SCALE || '1');
  return s > 0 ? Math.max(1, Math.floor(n * s)) : n;
}

function rssKiB() {
  return parseInt(fs.readFileSync('/proc/self/statm', 'utf8').split(' ')[1], 10) * 4;
}

function nsSince(t) {
  return Number(process.hrtime.bigint() - t);
}

/** A channel of capacity 1 between async functions: enough for ping-pong. */
class Channel {
  constructor() {
    this.value = undefined;
    this.full = false;
    this.receiver = null;
    this.sender = null;
  }
  async send(v) {
    while (this.full) await new Promise((r) => (this.sender = r));
    this.value = v;
    this.full = true;
    const r = this.receiver;
    this.receiver = null;
    if (r) r();
  }
  async recv() {
    while (!this.full) await new Promise((r) => (this.receiver = r));
    const v = this.value;
    this.full = false;
    const s = this.sender;
    this.sender = null;
    if (s) s();
    return v;
  }
}

const benches = {
  async spawn_join() {
    const n = scaled(200000);
    const t = process.hrtime.bigint();
    const tasks = new Array(n);
    for (let i = 0; i < n; i++) tasks[i] = (async (i) => i)(i);
    let sum = 0;
    for (const task of tasks) sum += await task;
    if (sum !== (n * (n - 1)) / 2) throw new Error('wrong sum');
    return nsSince(t) / n;
  },
  async spawn_join_each() {
    const n = scaled(200000);
    const t = process.hrtime.bigint();
    let sum = 0;
    for (let i = 0; i < n; i++) sum += await (async (i) => i)(i);
    if (sum !== (n * (n - 1)) / 2) throw new Error('wrong sum');
    return nsSince(t) / n;
  },
  async yield() {
    const n = scaled(1000);
    const t = process.hrtime.bigint();
    const tasks = [];
    for (let i = 0; i < n; i++) {
      tasks.push(
        (async () => {
          for (let j = 0; j < YIELDS; j++) await new Promise((r) => setImmediate(r));
        })()
      );
    }
    await Promise.all(tasks);
    return nsSince(t) / (n * YIELDS);
  },
  async ping_pong() {
    const n = scaled(100000);
    const ping = new Channel();
    const pong = new Channel();
    const echo = (async () => {
      for (;;) {
        const v = await ping.recv();
        if (v < 0) return;
        await pong.send(v);
      }
    })();
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      await ping.send(i);
      if ((await pong.recv()) !== i) throw new Error('out of order');
    }
    const took = nsSince(t) / n;
    await ping.send(-1);
    await echo;
    return took;
  },
  async sleeps() {
    const n = scaled(100000);
    const t = process.hrtime.bigint();
    const tasks = new Array(n);
    for (let i = 0; i < n; i++) tasks[i] = new Promise((r) => setTimeout(r, 10));
    await Promise.all(tasks);
    return nsSince(t) / 1e6;
  },
  async rss_parked() {
    const n = scaled(100000);
    let open;
    const gate = new Promise((r) => (open = r));
    let started = 0;
    const before = rssKiB();
    const tasks = new Array(n);
    for (let i = 0; i < n; i++) {
      tasks[i] = (async () => {
        started++;
        await gate;
      })();
    }
    while (started < n) await new Promise((r) => setTimeout(r, 1));
    await new Promise((r) => setTimeout(r, 20));
    const after = rssKiB();
    open();
    await Promise.all(tasks);
    return (after - before) / n;
  },
};

async function main() {
  const [name, warmArg] = process.argv.slice(2);
  const f = benches[name];
  if (!f || warmArg === undefined) {
    console.error('usage: node micro.js BENCH WARM_ITERS');
    process.exit(2);
  }
  const out = [];
  for (let i = 0; i <= parseInt(warmArg, 10); i++) out.push((await f()).toFixed(3));
  console.log('RESULT ' + out.join(' '));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
