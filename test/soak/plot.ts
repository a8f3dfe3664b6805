/**
 * A hand-built SVG of a soak run: throughput, latency and disk over time, one panel each, with a
 * vertical line at every server kill. No charting dependency: three polyline panels are enough.
 */

export interface Series {
  name: string;
  color: string;
  /** [seconds since start, value] */
  points: Array<[number, number]>;
}

export interface Panel {
  title: string;
  unit: string;
  series: Series[];
  /** Plot the value axis on a log10 scale (latency). */
  log?: boolean;
}

const WIDTH = 960;
const PANEL_HEIGHT = 190;
const LEFT = 70;
const RIGHT = 150;
const TOP = 30;
const GAP = 46;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  if (v >= 1000) return `${Number((v / 1000).toPrecision(3))}k`;
  if (v >= 10 || v === 0) return String(Math.round(v));
  return String(Number(v.toPrecision(2)));
}

/** Renders the panels stacked, sharing the time axis `[0, duration]` seconds. */
export function renderSvg(title: string, duration: number, panels: Panel[], kills: number[]): string {
  const plotW = WIDTH - LEFT - RIGHT;
  const height = TOP + panels.length * (PANEL_HEIGHT + GAP) + 10;
  const x = (t: number): number =>
    LEFT + (Math.max(0, Math.min(duration, t)) / Math.max(1, duration)) * plotW;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${LEFT}" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
  panels.forEach((panel, i) => {
    const top = TOP + i * (PANEL_HEIGHT + GAP) + 14;
    const bottom = top + PANEL_HEIGHT;
    const values = panel.series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => Number.isFinite(v));
    const rawMax = values.length > 0 ? Math.max(...values) : 1;
    let y: (v: number) => number;
    const ticks: number[] = [];
    if (panel.log === true) {
      const lo = Math.max(
        0.01,
        10 ** Math.floor(Math.log10(Math.max(0.01, Math.min(...values.filter((v) => v > 0), rawMax)))),
      );
      const hi = 10 ** Math.ceil(Math.log10(Math.max(lo * 10, rawMax)));
      y = (v) =>
        bottom -
        ((Math.log10(Math.max(lo, v)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * PANEL_HEIGHT;
      for (let t = lo; t <= hi * 1.001; t *= 10) ticks.push(t);
    } else {
      const hi = niceMax(rawMax);
      y = (v) => bottom - (v / hi) * PANEL_HEIGHT;
      for (let k = 0; k <= 4; k++) ticks.push((hi * k) / 4);
    }
    out.push(
      `<text x="${LEFT}" y="${top - 6}" font-size="12" font-weight="bold">${esc(panel.title)} (${esc(panel.unit)})</text>`,
    );
    out.push(
      `<rect x="${LEFT}" y="${top}" width="${plotW}" height="${PANEL_HEIGHT}" fill="none" stroke="#999"/>`,
    );
    for (const t of ticks) {
      const ty = y(t).toFixed(1);
      out.push(`<line x1="${LEFT}" x2="${LEFT + plotW}" y1="${ty}" y2="${ty}" stroke="#eee"/>`);
      out.push(
        `<text x="${LEFT - 6}" y="${ty}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`,
      );
    }
    for (const k of kills) {
      out.push(
        `<line x1="${x(k).toFixed(1)}" x2="${x(k).toFixed(1)}" y1="${top}" y2="${bottom}" stroke="#d62728" stroke-dasharray="3,3" stroke-width="1"/>`,
      );
    }
    const step = duration > 1200 ? 600 : duration > 300 ? 60 : 30;
    for (let t = 0; t <= duration; t += step) {
      out.push(
        `<text x="${x(t).toFixed(1)}" y="${bottom + 14}" text-anchor="middle">${t >= 60 ? `${Math.round(t / 60)}m` : `${t}s`}</text>`,
      );
    }
    panel.series.forEach((s, j) => {
      const pts = s.points
        .filter((p) => Number.isFinite(p[1]))
        .map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`)
        .join(' ');
      if (pts !== '')
        out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.3" points="${pts}"/>`);
      const ly = top + 12 + j * 16;
      out.push(
        `<line x1="${LEFT + plotW + 10}" x2="${LEFT + plotW + 26}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>`,
      );
      out.push(`<text x="${LEFT + plotW + 30}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`);
    });
    if (i === 0 && kills.length > 0) {
      const ly = top + 12 + panel.series.length * 16;
      out.push(
        `<line x1="${LEFT + plotW + 10}" x2="${LEFT + plotW + 26}" y1="${ly}" y2="${ly}" stroke="#d62728" stroke-dasharray="3,3"/>`,
      );
      out.push(`<text x="${LEFT + plotW + 30}" y="${ly}" dominant-baseline="middle">SIGKILL</text>`);
    }
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
