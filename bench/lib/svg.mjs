// A small SVG bar chart: per route, one bar per configuration, height = throughput ratio to bare
// Nest. No image library; plain SVG text.

const PALETTE = [
  '#7f7f7f',
  '#1f77b4',
  '#2ca02c',
  '#17becf',
  '#9467bd',
  '#d62728',
  '#ff7f0e',
  '#8c564b',
  '#e377c2',
  '#bcbd22',
  '#393b79',
  '#637939',
  '#8c6d31',
  '#843c39',
  '#7b4173',
  '#3182bd',
];

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * @param {object} chart
 * @param {string} chart.title
 * @param {{ id: string, label: string }[]} chart.groups     routes
 * @param {{ id: string, label: string }[]} chart.series     configurations
 * @param {(group: string, series: string) => number | undefined} chart.value  ratio to bare, or undefined (not measured)
 * @param {string} [chart.note]
 */
export function barChartSvg({ title, groups, series, value, note }) {
  const barW = 16;
  const gap = 4;
  const groupGap = 36;
  const left = 56;
  const top = 48;
  const plotH = 260;
  const groupW = series.length * (barW + gap) - gap;
  const width = Math.max(640, left + groups.length * (groupW + groupGap) + 20);
  const legendRows = Math.ceil(series.length / 3);
  const height = top + plotH + 74 + legendRows * 18 + (note ? 22 : 0);
  let max = 1;
  for (const g of groups) for (const s of series) max = Math.max(max, value(g.id, s.id) ?? 0);
  max = Math.ceil(max * 5) / 5;
  const y = (v) => top + plotH - (v / max) * plotH;
  const out = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${left}" y="24" font-size="15" font-weight="600">${esc(title)}</text>`,
  );
  for (let t = 0; t <= max + 1e-9; t += 0.2) {
    const yy = y(t).toFixed(1);
    const strong = Math.abs(t - 1) < 1e-9;
    out.push(
      `<line x1="${left}" x2="${width - 10}" y1="${yy}" y2="${yy}" stroke="${strong ? '#333' : '#ddd'}" stroke-width="${strong ? 1.2 : 1}"${strong ? ' stroke-dasharray="4 3"' : ''}/>`,
      `<text x="${left - 6}" y="${(+yy + 4).toFixed(1)}" text-anchor="end" fill="#555">${t.toFixed(1)}×</text>`,
    );
  }
  groups.forEach((g, gi) => {
    const x0 = left + 12 + gi * (groupW + groupGap);
    series.forEach((s, si) => {
      const v = value(g.id, s.id);
      const x = x0 + si * (barW + gap);
      if (v === undefined || !Number.isFinite(v)) {
        out.push(
          `<text x="${x + barW / 2}" y="${top + plotH - 4}" text-anchor="middle" fill="#aaa" font-size="10">n/a</text>`,
        );
        return;
      }
      out.push(
        `<rect x="${x}" y="${y(v).toFixed(1)}" width="${barW}" height="${(top + plotH - y(v)).toFixed(1)}" fill="${PALETTE[si % PALETTE.length]}"><title>${esc(`${s.label} — ${g.label}: ${v.toFixed(2)}× bare`)}</title></rect>`,
        `<text x="${x + barW / 2}" y="${(y(v) - 3).toFixed(1)}" text-anchor="middle" font-size="9" fill="#333">${v.toFixed(2)}</text>`,
      );
    });
    // "GET /plain (no session use)": the request on one line, the description under it.
    const [request, detail] = g.label.split(/ \((.*)\)$/);
    out.push(
      `<text x="${x0 + groupW / 2}" y="${top + plotH + 18}" text-anchor="middle" fill="#222">${esc(request)}</text>`,
    );
    if (detail) {
      out.push(
        `<text x="${x0 + groupW / 2}" y="${top + plotH + 32}" text-anchor="middle" fill="#666" font-size="11">${esc(detail)}</text>`,
      );
    }
  });
  const ly = top + plotH + 54;
  series.forEach((s, si) => {
    const lx = left + (si % 3) * 230;
    const yy = ly + Math.floor(si / 3) * 18;
    out.push(
      `<rect x="${lx}" y="${yy - 10}" width="12" height="12" fill="${PALETTE[si % PALETTE.length]}"/>`,
      `<text x="${lx + 17}" y="${yy}" fill="#222">${esc(s.label)}</text>`,
    );
  });
  if (note)
    out.push(`<text x="${left}" y="${height - 8}" fill="#666" font-size="11">${esc(note)}</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Stacks whole SVG documents (from barChartSvg) vertically into one. */
export function stackSvgs(svgs) {
  const sizes = svgs.map((svg) => {
    const m = /width="(\d+(?:\.\d+)?)" height="(\d+(?:\.\d+)?)"/.exec(svg);
    return { w: Number(m[1]), h: Number(m[2]) };
  });
  const width = Math.max(...sizes.map((x) => x.w));
  const height = sizes.reduce((n, x) => n + x.h, 0);
  let y = 0;
  const parts = svgs.map((svg, i) => {
    const inner = svg.replace(/^<svg /, `<svg x="0" y="${y}" `);
    y += sizes[i].h;
    return inner;
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
