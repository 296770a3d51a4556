// Koncorde side of `cargo bench -p switchyard-filters --bench matching`: same filters, same
// documents, same measurement (documents matched per second for ~2 s).
'use strict';

const fs = require('fs');
const { Koncorde } = require('koncorde');

const { index, filters, docs } = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const before = process.memoryUsage().heapUsed + process.memoryUsage().external;
let start = process.hrtime.bigint();
const koncorde = new Koncorde({ maxConditions: 100 });
for (const f of filters) koncorde.register(f, index);
const storeSeconds = Number(process.hrtime.bigint() - start) / 1e9;
global.gc && global.gc();
const memory = process.memoryUsage().heapUsed + process.memoryUsage().external - before;

let total = 0;
let rounds = 0;
start = process.hrtime.bigint();
let elapsed = 0;
while (rounds === 0 || elapsed < 2) {
  for (const d of docs) total += koncorde.test(d, index).length;
  rounds += 1;
  elapsed = Number(process.hrtime.bigint() - start) / 1e9;
}
const rate = (rounds * docs.length) / elapsed;
const n = String(filters.length).padStart(7);
console.log(
  `koncorde  ${n} subscriptions (${koncorde.getFilterIds(index).length} rooms): ${rate.toFixed(0).padStart(12)} documents/s, `
  + `${(total / (rounds * docs.length)).toFixed(2)} matches/doc, store ${storeSeconds.toFixed(2)}s, ~${Math.round(memory / filters.length)} bytes/subscription`);
