// Differential-test oracle: npm koncorde answers, one JSON line in, one JSON line out.
//
// In:  {"filters": [filter, ...], "docs": [doc, ...], "index": "i/c", "maxConditions": 100}
// Out: {"errors": [null | {"kind", "message", "keyword", "path"}], "matches": [[filter positions], ...]}
//
// All filters of a line share one Koncorde instance (as subscriptions share Kuzzle's), so
// matching is tested with the filters side by side.
'use strict';

const readline = require('readline');
const { Koncorde } = require('koncorde');

function errorOf(e) {
  let kind = 'other';
  if (e && e.constructor && e.constructor.name === 'KoncordeParseError') kind = 'parse';
  else if (e instanceof TypeError) kind = 'type';
  else if (e instanceof Error && /^Filter too complex/.test(e.message)) kind = 'too_complex';
  else if (e instanceof Error && /^unable to parse distance value/.test(e.message)) kind = 'distance';
  return {
    kind,
    message: e && e.message !== undefined ? String(e.message) : String(e),
    keyword: e && e.keyword !== undefined ? e.keyword : null,
    path: e && e.path !== undefined ? e.path : null,
  };
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  if (!line.trim()) return;
  const req = JSON.parse(line);
  const koncorde = new Koncorde({ maxConditions: req.maxConditions || 100 });
  const index = req.index || 'i/c';
  const ids = [];
  const errors = req.filters.map((filter, position) => {
    try {
      const id = koncorde.register(filter, index);
      ids.push([id, position]);
      return null;
    } catch (e) {
      return errorOf(e);
    }
  });
  const matches = req.docs.map((doc) => {
    let found;
    try {
      found = new Set(koncorde.test(doc, index));
    } catch (e) {
      return { error: errorOf(e) };
    }
    return ids.filter(([id]) => found.has(id)).map(([, position]) => position);
  });
  process.stdout.write(JSON.stringify({ errors, matches }) + '\n');
});
