/**
 * Flame graphs from V8 profiles, rendered to a standalone SVG.
 *
 * - A .cpuprofile (from `node --cpu-prof`) is a call tree (nodes with
 *   children ids) plus the sequence of sampled node ids. A node's weight is
 *   the number of samples taken in it; a frame's width is its own samples
 *   plus its children's (the time the stack spent in or under it).
 * - A .heapprofile (from `node --heap-prof`) is a call tree whose nodes carry
 *   selfSize: sampled bytes allocated there and still live when the profile
 *   was written (at exit). Same rendering, in bytes.
 *
 * Sibling frames with the same function, file and position are merged; the
 * idle node is left out of the graph (its share is given in the title) so
 * that the width is the time the process was busy. Frames are ordered by
 * name, as flame graphs are: the x axis is not time.
 */
import path from 'node:path';

const FRAME_HEIGHT = 16;
const WIDTH = 1200;
const PAD = 10;
const TOP = 44;
const FONT = 11;
const CHAR_PX = 6.6;

function shortUrl(url) {
  if (!url) return '';
  let u = url.startsWith('file://') ? decodeURIComponent(url.slice(7)) : url;
  const dist = u.lastIndexOf('/dist/');
  if (dist >= 0) u = u.slice(dist + 1);
  else if (u.includes('/node_modules/')) u = u.slice(u.lastIndexOf('/node_modules/') + 1);
  else if (path.isAbsolute(u)) u = path.basename(u);
  return u;
}

function frameOf(callFrame) {
  const name = callFrame.functionName || '(anonymous)';
  const file = shortUrl(callFrame.url);
  const line = callFrame.lineNumber >= 0 ? callFrame.lineNumber + 1 : 0;
  return { name, file, line, key: `${name}\u0000${file}\u0000${line}\u0000${callFrame.columnNumber}` };
}

function newNode(frame) {
  return { ...frame, self: 0, total: 0, children: new Map() };
}

/** Adds `src`'s subtree under `dst`, merging children with equal keys. Iterative: stacks can be deep. */
function mergeInto(dst, src, getChildren, getSelf) {
  const work = [[dst, src]];
  while (work.length > 0) {
    const [d, s] = work.pop();
    d.self += getSelf(s);
    for (const child of getChildren(s)) {
      const frame = frameOf(child.callFrame);
      let c = d.children.get(frame.key);
      if (c === undefined) {
        c = newNode(frame);
        d.children.set(frame.key, c);
      }
      work.push([c, child]);
    }
  }
}

function computeTotals(root) {
  const order = [];
  const work = [root];
  while (work.length > 0) {
    const n = work.pop();
    order.push(n);
    for (const c of n.children.values()) work.push(c);
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i];
    n.total = n.self;
    for (const c of n.children.values()) n.total += c.total;
  }
  return root;
}

/** Tree of a .cpuprofile, weights in samples; `idle` is the number of idle samples left out. */
export function cpuProfileTree(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const samples = new Map();
  if (Array.isArray(profile.samples) && profile.samples.length > 0) {
    for (const id of profile.samples) samples.set(id, (samples.get(id) ?? 0) + 1);
  } else {
    for (const n of profile.nodes) samples.set(n.id, n.hitCount ?? 0);
  }
  const rootNode = profile.nodes[0];
  let idle = 0;
  const getChildren = (n) =>
    (n.children ?? [])
      .map((id) => byId.get(id))
      .filter((c) => {
        if (c === undefined) return false;
        if (c.callFrame.functionName === '(idle)') {
          idle += samples.get(c.id) ?? 0;
          return false;
        }
        return true;
      });
  const root = newNode({ name: 'all', file: '', line: 0, key: 'all' });
  mergeInto(root, rootNode, getChildren, (n) => samples.get(n.id) ?? 0);
  computeTotals(root);
  const durationMs = (profile.endTime - profile.startTime) / 1000;
  return {
    root,
    idle,
    unit: 'samples',
    durationMs,
    sampleCount: profile.samples?.length ?? root.total + idle,
  };
}

/** Tree of a .heapprofile, weights in bytes. */
export function heapProfileTree(profile) {
  const root = newNode({ name: 'all', file: '', line: 0, key: 'all' });
  mergeInto(
    root,
    profile.head,
    (n) => n.children ?? [],
    (n) => n.selfSize ?? 0,
  );
  computeTotals(root);
  return { root, idle: 0, unit: 'bytes', durationMs: null, sampleCount: profile.samples?.length ?? null };
}

/** The `count` frames with the most self weight, merged across call paths. */
export function topSelf(tree, count = 15) {
  const byFrame = new Map();
  const work = [tree.root];
  while (work.length > 0) {
    const n = work.pop();
    if (n !== tree.root && n.self > 0) {
      const k = `${n.name}\u0000${n.file}\u0000${n.line}`;
      const e = byFrame.get(k) ?? { name: n.name, file: n.file, line: n.line, self: 0 };
      e.self += n.self;
      byFrame.set(k, e);
    }
    for (const c of n.children.values()) work.push(c);
  }
  const total = tree.root.total || 1;
  return [...byFrame.values()]
    .sort((a, b) => b.self - a.self)
    .slice(0, count)
    .map((e) => ({ ...e, share: e.self / total }));
}

function escapeXml(s) {
  return s.replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c],
  );
}

/** A stable colour per frame: hue by kind (ringkv code, node internals, GC, native), shade by name. */
function colorOf(node) {
  let h = 0;
  for (let i = 0; i < node.name.length; i++) h = (h * 31 + node.name.charCodeAt(i)) >>> 0;
  const v = (h % 1000) / 1000;
  if (node.name === '(garbage collector)') return 'rgb(220,60,60)';
  if (node.name.startsWith('('))
    return `rgb(${170 + Math.round(v * 30)},${170 + Math.round(v * 30)},${170 + Math.round(v * 30)})`;
  if (node.file.startsWith('dist/'))
    return `rgb(${230 + Math.round(v * 25)},${110 + Math.round(v * 70)},${30 + Math.round(v * 30)})`;
  if (node.file.startsWith('node:') || node.file === '')
    return `rgb(${200 + Math.round(v * 40)},${190 + Math.round(v * 40)},${60 + Math.round(v * 30)})`;
  return `rgb(${90 + Math.round(v * 40)},${150 + Math.round(v * 50)},${210 + Math.round(v * 40)})`;
}

function formatWeight(value, unit) {
  if (unit === 'bytes') {
    if (value >= 2 ** 20) return `${(value / 2 ** 20).toFixed(1)} MiB`;
    if (value >= 1024) return `${(value / 1024).toFixed(1)} KiB`;
    return `${value} B`;
  }
  return `${value} samples`;
}

/** The SVG text of a flame graph of `tree` (root at the bottom). */
export function renderFlameGraph(tree, { title, subtitle = '' } = {}) {
  const total = tree.root.total;
  const rects = [];
  let maxDepth = 0;
  const scale = total > 0 ? (WIDTH - 2 * PAD) / total : 0;
  // Depth-first with explicit stack: [node, depth, x offset in weight units].
  const work = [[tree.root, 0, 0]];
  while (work.length > 0) {
    const [node, depth, offset] = work.pop();
    const w = node.total * scale;
    if (w < 0.3) continue;
    if (depth > maxDepth) maxDepth = depth;
    rects.push({ node, depth, x: PAD + offset * scale, w });
    let childOffset = offset;
    const children = [...node.children.values()].sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
    for (const c of children) {
      work.push([c, depth + 1, childOffset]);
      childOffset += c.total;
    }
  }
  const height = TOP + (maxDepth + 1) * FRAME_HEIGHT + PAD + 16;
  const out = [];
  out.push(
    `<?xml version="1.0" standalone="no"?>`,
    `<svg version="1.1" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" xmlns="http://www.w3.org/2000/svg" font-family="Verdana, sans-serif" font-size="${FONT}">`,
    `<rect x="0" y="0" width="${WIDTH}" height="${height}" fill="#f8f8f4"/>`,
    `<text x="${WIDTH / 2}" y="18" text-anchor="middle" font-size="15">${escapeXml(title ?? 'Flame graph')}</text>`,
    `<text x="${WIDTH / 2}" y="34" text-anchor="middle" fill="#555">${escapeXml(subtitle)}</text>`,
  );
  for (const { node, depth, x, w } of rects) {
    const y = height - PAD - 16 - (depth + 1) * FRAME_HEIGHT;
    const share = total > 0 ? ((node.total / total) * 100).toFixed(2) : '0';
    const where = node.file ? ` (${node.file}${node.line ? `:${node.line}` : ''})` : '';
    const label =
      `${node.name}${where}: ${formatWeight(node.total, tree.unit)}, ${share}%` +
      (node.self > 0 ? `, self ${formatWeight(node.self, tree.unit)}` : '');
    out.push(
      `<g><title>${escapeXml(label)}</title>` +
        `<rect x="${x.toFixed(1)}" y="${y}" width="${Math.max(0.1, w - 0.3).toFixed(1)}" height="${FRAME_HEIGHT - 1}" fill="${colorOf(node)}" rx="1"/>`,
    );
    const chars = Math.floor((w - 6) / CHAR_PX);
    if (chars >= 3) {
      const text = node.name.length <= chars ? node.name : `${node.name.slice(0, chars - 2)}..`;
      out.push(`<text x="${(x + 3).toFixed(1)}" y="${y + FRAME_HEIGHT - 4}">${escapeXml(text)}</text>`);
    }
    out.push('</g>');
  }
  out.push(
    `<text x="${PAD}" y="${height - 6}" fill="#555">Width: share of ${tree.unit === 'bytes' ? 'sampled live bytes' : 'busy CPU samples'}; ` +
      'hover a frame for its function, file:line and weight. Orange: ringkv (dist/), yellow: Node internals, ' +
      'red: garbage collector, grey: native/VM, blue: other JS.</text>',
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}
