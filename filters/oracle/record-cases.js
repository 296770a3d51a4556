// Mocha root-hook plugin: records Koncorde's own black-box test cases (every `it()` under a
// `#validation` or `#matching` describe) as a replayable table. Each call the test makes to the
// Koncorde API (validate, register, normalize, store, test, remove, hasFilterId) is logged with
// its arguments and Koncorde's answer or error. Run by `record-cases.sh`; the Rust table test
// (`filters/src/tests.rs`, `koncorde_suite_cases_replay`) replays the calls against our engine.
'use strict';

const fs = require('fs');
const path = require('path');

const dir = process.env.KONCORDE_SUITE_DIR;
const out = process.env.KONCORDE_CASES_OUT;
const { Koncorde } = require(dir);

const OPS = ['validate', 'register', 'normalize', 'store', 'test', 'remove', 'hasFilterId'];
let instances = new Map();
// Koncorde's ids are seeded at random: recorded as "#1", "#2", … in order of appearance.
let tokens = new Map();
const token = (id) => {
  if (typeof id !== 'string') return id;
  if (!tokens.has(id)) tokens.set(id, `#${tokens.size + 1}`);
  return tokens.get(id);
};
let current = null;
let depth = 0;
const cases = [];

// JSON can carry it unchanged: no undefined, functions, NaN/Infinity, or non-plain objects.
function representable(x) {
  if (x === undefined || typeof x === 'function' || typeof x === 'symbol' || typeof x === 'bigint') return false;
  if (typeof x === 'number') return Number.isFinite(x);
  if (x === null || typeof x !== 'object') return true;
  if (Array.isArray(x)) return x.every((item, i) => i in x && representable(item));
  const proto = Object.getPrototypeOf(x);
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.values(x).every(representable);
}

function errorOf(e) {
  return {
    message: e && e.message !== undefined ? String(e.message) : String(e),
    keyword: e && e.keyword !== undefined ? e.keyword : null,
    path: e && e.path !== undefined ? e.path : null,
  };
}

// `koncorde.validate(f)` is `standardizer.standardize(f)`, which the geo `#validation` cases call
// directly: such calls are recorded as `validate`.
const Standardizer = new Koncorde().transformer.standardizer.constructor;
const targets = OPS.map((op) => [Koncorde.prototype, op, op]);
targets.push([Standardizer.prototype, 'standardize', 'validate']);

for (const [proto, method, op] of targets) {
  const original = proto[method];
  proto[method] = function recorded(...args) {
    if (!current || depth > 0) return original.apply(this, args);
    if (!instances.has(this)) {
      instances.set(this, current.instances.length);
      current.instances.push(this instanceof Koncorde
        ? { maxConditions: this.config.maxConditions, regExpEngine: this.config.regExpEngine }
        : { maxConditions: null, regExpEngine: this.RegExpConstructor === RegExp ? 'js' : 're2' });
    }
    const entry = { op, instance: instances.get(this) };
    if (op === 'store') {
      // A normalized filter object: refer to it by its id.
      entry.args = [{ normalized: token(args[0] && args[0].id) }, ...args.slice(1)];
    } else if (op === 'remove' || op === 'hasFilterId') {
      entry.args = [token(args[0]), ...args.slice(1)];
    } else {
      entry.args = args;
    }
    if (!representable(entry.args)) {
      current.skip = current.skip || `arguments JSON cannot carry: ${op}`;
    }
    depth += 1;
    try {
      const result = original.apply(this, args);
      if (op === 'normalize') entry.result = token(result.id);
      else if (method === 'standardize') entry.result = null;
      else if (op === 'register' || op === 'store') entry.result = token(result);
      else if (op === 'test') entry.result = result.map(token);
      else entry.result = result === undefined ? null : result;
      return result;
    } catch (e) {
      entry.error = errorOf(e);
      throw e;
    } finally {
      depth -= 1;
      current.calls.push(JSON.parse(JSON.stringify(entry, (k, v) => (v === undefined ? null : v))));
    }
  };
}

exports.mochaHooks = {
  beforeEach() {
    const title = this.currentTest.fullTitle();
    instances = new Map();
    tokens = new Map();
    current = /#(matching|validation)/.test(title)
      ? { file: path.relative(dir, this.currentTest.file), title, instances: [], calls: [] }
      : null;
  },
  afterEach() {
    if (current) {
      current.passed = this.currentTest.state === 'passed';
      cases.push(current);
    }
    current = null;
  },
};

process.on('exit', () => {
  fs.writeFileSync(out, JSON.stringify(cases, null, 0).replace(/\},\{"file"/g, '},\n{"file"') + '\n');
});
