/**
 * Settings from environment variables, each with a default. Every setting
 * read is remembered with its value, so the results file records exactly
 * what a run used (see bench/README.md for the list).
 */
const used = {};

function raw(name) {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : v;
}

export function envInt(name, fallback, { min = 0 } = {}) {
  const v = raw(name);
  let n = fallback;
  if (v !== undefined) {
    n = Number(v.replaceAll('_', ''));
    if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}: got ${v}`);
  }
  used[name] = n;
  return n;
}

export function envNumber(name, fallback, { min = 0 } = {}) {
  const v = raw(name);
  let n = fallback;
  if (v !== undefined) {
    n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`${name} must be a number >= ${min}: got ${v}`);
  }
  used[name] = n;
  return n;
}

export function envString(name, fallback) {
  const v = raw(name) ?? fallback;
  used[name] = v;
  return v;
}

/** One of `allowed` (a switch: `0`/`1`, `on`/`off`); any other value is refused, not taken for the default. */
export function envChoice(name, fallback, allowed) {
  const v = raw(name) ?? fallback;
  if (!allowed.includes(v)) throw new Error(`${name} must be ${allowed.join(' or ')}: got ${v}`);
  used[name] = v;
  return v;
}

/** A `0`/`1` switch, as a boolean; any other value is refused (envChoice). */
export function envFlag(name, fallback) {
  return envChoice(name, fallback ? '1' : '0', ['0', '1']) === '1';
}

/** A comma-separated list whose items must come from `allowed`. */
export function envList(name, fallback, allowed) {
  const v = raw(name);
  const list =
    v === undefined
      ? fallback
      : v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
  for (const item of list) {
    if (!allowed.includes(item))
      throw new Error(`${name}: unknown item ${item} (allowed: ${allowed.join(', ')})`);
  }
  used[name] = list.join(',');
  return list;
}

/** A comma-separated list of numbers (`none`: the empty list). */
export function envNumberList(name, fallback, { min = 0 } = {}) {
  const v = raw(name);
  const list =
    v === undefined
      ? fallback
      : v === 'none'
        ? []
        : v.split(',').map((s) => {
            const n = Number(s.trim());
            if (!Number.isFinite(n) || n < min) throw new Error(`${name}: not a number >= ${min}: ${s}`);
            return n;
          });
  used[name] = list.join(',');
  return list;
}

export function usedSettings() {
  return { ...used };
}
