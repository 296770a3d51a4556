// Koncorde side of `cargo bench -p switchyard-filters --bench matching`: same filters, same
// documents, same measurement (documents matched per second for ~2 s).
'use strict';

const fs = require('fs');
const { Koncorde } = require('koncorde');

const { index, filters, docs, misses } = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
global.gc && global.gc();
const before = process.memoryUsage().heapUsed + process.memoryUsage().external;
const start = process.hrtime.bigint();
const koncorde = new Koncorde({ maxConditions: 100 });
for (const f of filters) koncorde.register(f, index);
const storeSeconds = Number(process.hrtime.bigint() - start) / 1e9;
global.gc && global.gc();
const memory = process.memoryUsage().heapUsed + process.memoryUsage().external - before;

function rate(documents) {
  let total = 0;
  let rounds = 0;
  const begin = process.hrtime.bigint();
  let elapsed = 0;
  while (rounds === 0 || elapsed < 2) {
    for (const d of documents) total += koncorde.test(d, index).length;
    rounds += 1;
    elapsed = Number(process.hrtime.bigint() - begin) / 1e9;
  }
  return [(rounds * documents.length) / elapsed, total / (rounds * documents.length)];
}

const [rateDocs, matches] = rate(docs);
const [rateMisses] = misses ? rate(misses) : [NaN];
const n = String(filters.length).padStart(7);
console.log(
  `koncorde  ${n} subscriptions (${koncorde.getFilterIds(index).length} rooms): ${rateDocs.toFixed(0).padStart(12)} documents/s, `
  + `${matches.toFixed(2)} matches/doc, ${rateMisses.toFixed(0)} documents matching nothing/s, store ${storeSeconds.toFixed(2)}s, ~${Math.round(memory / filters.length)} bytes/subscription`);
