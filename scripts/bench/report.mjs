#!/usr/bin/env node
// Results of `make bench` (scripts/bench.sh) as text.
//
//   node scripts/bench/report.mjs line '<one results.jsonl line>'
//       one progress line for the console
//   node scripts/bench/report.mjs report META.json RESULTS.jsonl REPORT.md
//       prints the summary table and the verdict on each target, and
//       replaces what is between the two marker comments of REPORT.md
//       (docs/BENCHMARKS.md) with the same, as Markdown
//
// Every number comes from the raw results; nothing is adjusted.  The
// targets and their thresholds are the ones of docs/BENCHMARKS.md.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';

const BEGIN = '<!-- bench:results:begin (written by scripts/bench.sh; edits here are overwritten) -->';
const END = '<!-- bench:results:end -->';
const TARGETS = {
  throughput: 0.25, // Fusion req/s >= 25% of nginx's
  cpu: 4, // Fusion CPU per request <= 4x nginx's
  p99: 1.1, // Fusion p99 stream duration <= 110% of direct
  rssMB: 150, // Fusion peak RSS holding the slow streams
};

const f = (x, d = 0) => (x === null || x === undefined || Number.isNaN(x) ? '—' : x.toFixed(d));
const fx = (x) => (x === null || x === undefined || !Number.isFinite(x) ? '—' : `${x.toFixed(2)}×`);
const sgn = (x) => (x >= 0 ? `+${x.toFixed(2)}` : `−${(-x).toFixed(2)}`);
const pctStr = (x) => (x === null || x === undefined || !Number.isFinite(x) ? '—' : `${(x * 100).toFixed(0)}%`);

function wrkRow(r) {
  const w = r.wrk;
  const secs = w.duration_us / 1e6;
  const e = w.errors;
  return {
    target: r.target, mode: r.mode, conns: r.conns, round: r.round ?? 1,
    requests: w.requests,
    rps: w.requests / secs,
    p50: w.latency_us.p50 / 1000,
    p99: w.latency_us.p99 / 1000,
    errors: e.connect + e.read + e.write + e.status + e.timeout,
    errorText: Object.entries(e).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(', '),
    cpu1k: w.requests ? (r.cpu_s / w.requests) * 1000 : null,
    upCpu1k: w.requests ? (r.upstream_cpu_s / w.requests) * 1000 : null,
    rssMB: r.hwm_kb / 1024,
    connects: r.tcp_connects,
  };
}

function line(r) {
  if (r.kind === 'wrk') {
    const x = wrkRow(r);
    return `bench: ${x.target.padEnd(6)} ${x.mode.padEnd(6)} c=${String(x.conns).padEnd(3)} ` +
      `${f(x.rps).padStart(7)} req/s  p50 ${f(x.p50, 2)} ms  p99 ${f(x.p99, 2)} ms  ` +
      `CPU ${f(x.cpu1k, 3)} s/1k req  RSS ${f(x.rssMB, 1)} MB${x.errors ? `  ERRORS: ${x.errorText}` : ''}`;
  }
  const s = r.streams;
  return `bench: ${r.target.padEnd(6)} ${s.streams} slow streams: ${s.ok} ok, ${s.errors} errors` +
    `${s.errors ? ` ${JSON.stringify(s.error_kinds)}` : ''}; duration p50 ${f(s.duration_ms?.p50)} ms ` +
    `p99 ${f(s.duration_ms?.p99)} ms max ${f(s.duration_ms?.max)} ms; first byte p99 ${f(s.ttfb_ms?.p99)} ms; ` +
    `listen overflows ${r.tcpext?.ListenOverflows ?? '—'}; CPU ${f(r.cpu_s, 2)} s; RSS ${f(r.hwm_kb / 1024, 1)} MB`;
}

const median = (xs) => {
  const v = xs.filter((x) => x !== null && x !== undefined && Number.isFinite(x)).sort((p, q) => p - q);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const range = (xs, d, unit = '') => {
  const v = xs.filter((x) => Number.isFinite(x));
  return v.length > 1 ? ` (${f(Math.min(...v), d)}–${f(Math.max(...v), d)}${unit})` : '';
};

// The rounds of one cell as one row: each measure's median over the rounds
// (errors and requests summed), plus the rounds themselves.
function mergeRounds(xs) {
  const m = (k) => median(xs.map((x) => x[k]));
  return {
    ...xs[0],
    rounds: xs,
    requests: xs.reduce((a, x) => a + x.requests, 0),
    rps: m('rps'), p50: m('p50'), p99: m('p99'), cpu1k: m('cpu1k'), upCpu1k: m('upCpu1k'),
    rssMB: Math.max(...xs.map((x) => x.rssMB)),
    connects: m('connects'),
    errors: xs.reduce((a, x) => a + x.errors, 0),
    errorText: xs.map((x) => x.errorText).filter(Boolean).join('; '),
  };
}

function table(head, rows) {
  const out = [`| ${head.join(' | ')} |`, `|${head.map((h, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const r of rows) out.push(`| ${r.join(' | ')} |`);
  return out.join('\n');
}

// Plain-text version of a Markdown table for the console.
function plain(md) {
  const rows = md.split('\n').filter((l) => !/^\|[-:|]+\|$/.test(l)).map((l) => l.slice(2, -2).split(' | ').map((c) => c.replace(/\*\*/g, '')));
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ')).join('\n');
}

function report(meta, results) {
  const wrk = results.filter((r) => r.kind === 'wrk').map(wrkRow);
  const warm = results.filter((r) => r.kind === 'warmup').map(wrkRow);
  const slow = Object.fromEntries(results.filter((r) => r.kind === 'slow').map((r) => [r.target, r]));
  const rounds = [...new Set(wrk.map((x) => x.round))].sort((p, q) => p - q);
  const cellRuns = (target, mode, conns) => wrk.filter((x) => x.target === target && x.mode === mode && x.conns === conns);
  const get = (target, mode, conns) => {
    const xs = cellRuns(target, mode, conns);
    return xs.length ? mergeRounds(xs) : undefined;
  };
  const conns = [...new Set(wrk.map((x) => x.conns))];
  const parts = [];
  const console_ = [];

  parts.push(`Run of ${meta.date}, ${meta.elapsed_s} s in all, with \`${meta.command}\`.`);
  parts.push([
    `- Machine: ${meta.nproc} CPUs (\`nproc\`), ${meta.cpu_model}, ${meta.mem_total} memory, ${meta.kernel}.`,
    `- Software: ${meta.fusion_version} (tree at ${meta.git_rev}); ${meta.nginx_version}; ${meta.wrk_version}.`,
    `- wrk runs: ${meta.duration_s} s each, \`-t ${meta.nproc}\`, connections ${meta.conns.split(' ').join(' / ')}, ` +
      `${rounds.length} round${rounds.length === 1 ? '' : 's'} (every cell of the series direct / nginx / fusion once per round); ` +
      'each number below is the median of the rounds, with their range in brackets where it matters; ' +
      `slow streams: ${meta.slow_streams} at once, ${meta.slow_events} events ${meta.slow_delay_ms} ms apart.`,
    `- CPU steal (time the hypervisor gave to other guests) during the run: ${meta.steal_pct ?? '—'}% of all CPU time.`,
    `- Peak RSS is VmHWM ${meta.hwm_reset === '1' ? 'reset before each run (`/proc/<pid>/clear_refs`), so it is the peak of that run' : 'since process start (resetting it failed)'}; ` +
      'for nginx, master plus workers summed.',
    ...(meta.stale ? [`- **Warning:** ${meta.stale}.`] : []),
  ].join('\n'));

  for (const mode of ['json', 'stream']) {
    const rows = [];
    for (const c of conns) {
      for (const t of ['direct', 'nginx', 'fusion']) {
        const x = get(t, mode, c);
        if (!x) { rows.push([String(c), t, '—', '—', '—', '—', '—', '—', '—', '—']); continue; }
        rows.push([String(c), t === 'fusion' ? '**fusion**' : t, f(x.rps) + range(x.rounds.map((r) => r.rps), 0), f(x.p50, 2), f(x.p99, 2), x.errors ? `**${x.errors}** (${x.errorText})` : '0',
          f(x.cpu1k, 3) + range(x.rounds.map((r) => r.cpu1k), 3), f(x.rssMB, 1), t === 'direct' ? '(same)' : f(x.upCpu1k, 3), f(x.connects ?? null)]);
      }
    }
    const title = mode === 'json' ? 'Non-streaming (one ~360-byte chat.completion per request)' : 'Streaming (5 content events + finish chunk + [DONE] per request, no delay)';
    const md = table(['conns', 'target', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'CPU-s / 1k req', 'peak RSS MB', 'upstream CPU-s / 1k req', 'TCP connects'], rows);
    parts.push(`### ${title}\n\n${md}`);
    console_.push(`${title}\n${plain(md)}`);
  }

  // Ratios, cell by cell.
  const ratioRows = [];
  let minThr = Infinity;
  let maxCpu = -Infinity;
  let cells = 0;
  for (const mode of ['json', 'stream']) {
    for (const c of conns) {
      const fu = get('fusion', mode, c);
      const ng = get('nginx', mode, c);
      const di = get('direct', mode, c);
      if (!fu || !ng) { ratioRows.push([mode, String(c), '—', '—', '—', '—']); continue; }
      // Ratios of runs measured back to back (the same round), then their
      // median: the machine's drift over minutes cancels out.
      const pairs = fu.rounds.map((x) => [x, ng.rounds.find((y) => y.round === x.round)]).filter(([, y]) => y);
      const thrs = pairs.map(([x, y]) => x.rps / y.rps);
      const cpus = pairs.map(([x, y]) => x.cpu1k / y.cpu1k);
      const thr = median(thrs);
      const cpu = median(cpus);
      cells++;
      minThr = Math.min(minThr, thr);
      maxCpu = Math.max(maxCpu, cpu);
      const span = (xs, fmt) => (xs.length > 1 ? ` (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})` : '');
      ratioRows.push([mode, String(c), pctStr(thr) + span(thrs, pctStr), fx(cpu) + span(cpus, fx), di ? pctStr(fu.rps / di.rps) : '—', di ? `${sgn(fu.p50 - di.p50)} / ${sgn(fu.p99 - di.p99)}` : '—']);
    }
  }
  const ratioMd = table(['mode', 'conns', 'Fusion req/s ÷ nginx (rounds)', 'Fusion CPU/req ÷ nginx (rounds)', 'Fusion req/s ÷ direct', 'Fusion p50 / p99 added vs direct (ms)'], ratioRows);
  parts.push(`### Fusion against nginx, same run\n\n${ratioMd}`);
  console_.push(`Fusion against nginx\n${plain(ratioMd)}`);

  // Slow streams.
  const slowRows = [];
  for (const t of ['direct', 'nginx', 'fusion']) {
    const r = slow[t];
    if (!r) { slowRows.push([t, '—', '—', '—', '—', '—', '—', '—', '—', '—', '—', '—']); continue; }
    const s = r.streams;
    slowRows.push([t === 'fusion' ? '**fusion**' : t, `${s.ok} / ${s.streams}`, s.errors ? `**${s.errors}** ${Object.entries(s.error_kinds).map(([k, v]) => `${k} ${v}`).join(', ')}` : '0',
      f(s.duration_ms?.p50), f(s.duration_ms?.p99), f(s.duration_ms?.max), `${f(s.ttfb_ms?.p50)} / ${f(s.ttfb_ms?.p99)} / ${f(s.ttfb_ms?.max)}`,
      String(r.tcpext?.ListenOverflows ?? '—'), String(r.tcp_connects ?? '—'), f(r.cpu_s, 2), f(r.hwm_kb / 1024, 1), f(r.rss_after_kb / 1024, 1)]);
  }
  const slowMd = table(['target', 'streams ok', 'errors', 'duration p50 ms', 'p99 ms', 'max ms', 'first byte p50 / p99 / max ms', 'listen overflows', 'TCP connects', 'CPU-s (whole test)', 'peak RSS MB', 'RSS after MB'], slowRows);
  const ideal = Number(meta.slow_events) * Number(meta.slow_delay_ms);
  parts.push(`### ${meta.slow_streams} slow streams held at once (${meta.slow_events} events, one per ${meta.slow_delay_ms} ms: ${ideal} ms at best)\n\n${slowMd}`);
  console_.push(`${meta.slow_streams} slow streams\n${plain(slowMd)}`);

  // Targets.
  const verdict = (ok) => (ok === null ? 'not measured' : ok ? '**met**' : '**NOT met**');
  const fs = slow.fusion?.streams;
  const ds = slow.direct?.streams;
  const p99Ratio = fs && ds && fs.duration_ms && ds.duration_ms ? fs.duration_ms.p99 / ds.duration_ms.p99 : null;
  const fuRss = slow.fusion ? slow.fusion.hwm_kb / 1024 : null;
  const allRss = Math.max(...wrk.filter((x) => x.target === 'fusion').map((x) => x.rssMB), fuRss ?? 0);
  const fusionWrkErrors = wrk.filter((x) => x.target === 'fusion').reduce((a, x) => a + x.errors, 0);
  const targetRows = [
    ['Fusion throughput ≥ 25% of nginx\'s', cells ? `lowest ${pctStr(minThr)} (over ${cells} cells, median of the rounds)` : '—', verdict(cells ? minThr >= TARGETS.throughput : null)],
    ['Fusion CPU per request ≤ 4× nginx\'s', cells ? `highest ${fx(maxCpu)} (median of the rounds)` : '—', verdict(cells ? maxCpu <= TARGETS.cpu : null)],
    [`${meta.slow_streams} slow streams held, no errors`, fs ? `${fs.ok} ok, ${fs.errors} errors` : '—', verdict(fs ? fs.errors === 0 && fs.ok === fs.streams : null)],
    ['p99 stream duration within 10% of direct', p99Ratio !== null ? `${f(fs.duration_ms.p99)} ms vs ${f(ds.duration_ms.p99)} ms: ${fx(p99Ratio)}` : '—', verdict(p99Ratio !== null ? p99Ratio <= TARGETS.p99 : null)],
    ['RSS under 150 MB (holding the slow streams)', fuRss !== null ? `${f(fuRss, 1)} MB (highest in any run: ${f(allRss, 1)} MB)` : '—', verdict(fuRss !== null ? fuRss < TARGETS.rssMB : null)],
  ];
  const targetMd = table(['target', 'measured', 'verdict'], targetRows);
  parts.push(`### Targets\n\n${targetMd}`);
  console_.push(`Targets\n${plain(targetMd)}`);

  const notes = [];
  const completed = [...wrk, ...warm].filter((x) => x.target === 'fusion').reduce((a, x) => a + x.requests, 0) + (slow.fusion?.streams.ok ?? 0) + 2;
  notes.push(`- Fusion ran with its default request logging: ${meta.fusion_rows !== '' ? `${meta.fusion_rows} rows in \`request_logs\` after the run` : 'the row count could not be read'}` +
    `${meta.fusion_outcomes ? ` (outcome status count: ${meta.fusion_outcomes.split(';').join('; ')})` : ''}, ` +
    `for ${completed} requests that the clients saw complete through Fusion (measured and warm-up wrk runs, slow streams, 2 start-up checks). ` +
    'Requests still in flight when a wrk run stops are not counted by wrk but can have rows.' +
    (meta.fusion_log_writer && meta.fusion_log_writer !== 'null' ? ` The log writer's own counters (\`GET /api/admin/stats\`, just before the stop): ${Object.entries(JSON.parse(meta.fusion_log_writer)).map(([k, v]) => `${k} ${v}`).join(', ')}.` : ''));
  // Where the log writer dropped rows: its cumulative counter read after each Fusion run.
  const fusionRuns = results.filter((r) => r.target === 'fusion' && r.log_writer);
  let prevDropped = 0;
  const dropsAt = [];
  for (const r of fusionRuns) {
    const d = r.log_writer.dropped - prevDropped;
    prevDropped = r.log_writer.dropped;
    if (d > 0) dropsAt.push(`${r.kind === 'slow' ? 'slow streams' : `${r.kind === 'warmup' ? 'warm-up ' : `round ${r.round} `}${r.mode} c=${r.conns}`}: ${d}`);
  }
  if (fusionRuns.length) {
    notes.push(`- Request-log rows the log writer dropped, by run (its \`dropped\` counter read after each Fusion run): ${dropsAt.length ? dropsAt.join('; ') : 'none'}.`);
  }
  notes.push('- "TCP connects" is the growth of the kernel\'s Tcp ActiveOpens counter during the run: wrk\'s own connections (one per wrk connection) plus the connections the proxy opened to the upstream.');
  notes.push(`- wrk errors against Fusion across all runs: ${fusionWrkErrors}. Fusion log lines at warn or error: ${meta.fusion_log_warnings || 0}` +
    `${meta.fusion_log_tail ? ` (last: \`${meta.fusion_log_tail.split('\n').slice(-2).join(' / ').slice(0, 300)}\`)` : ''}.`);
  const threads = JSON.parse(meta.fusion_threads || '{}');
  const tsum = Object.values(threads).reduce((a, b) => a + b, 0);
  if (tsum > 0) {
    notes.push(`- Fusion's CPU over the whole run by thread name: ${Object.entries(threads).sort((x, y) => y[1] - x[1])
      .map(([k, v]) => `\`${k}\` ${f(v, 1)} s (${f((v / tsum) * 100)}%)`).join(', ')}.`);
  }
  notes.push('- "listen overflows" is the growth of the kernel\'s TcpExt ListenOverflows counter during the test: connection attempts dropped because the accept queue of the listening socket was full; such a client retries its SYN after about 1 s.');
  if (meta.fusion_died) notes.push(`- **Fusion died**: ${meta.fusion_died}.`);
  else notes.push(`- Fusion exited with status ${meta.fusion_exit} on SIGTERM at the end.`);
  parts.push(`### Notes on this run\n\n${notes.join('\n')}`);

  return { md: parts.join('\n\n'), text: console_.join('\n\n') + '\n\n' + notes.join('\n').replace(/\*\*|`/g, '') };
}

const [mode, a, b, c] = process.argv.slice(2);
if (mode === 'line') {
  console.log(line(JSON.parse(a)));
} else if (mode === 'report') {
  const meta = JSON.parse(readFileSync(a, 'utf8'));
  const results = readFileSync(b, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const { md, text } = report(meta, results);
  console.log(`\n${text}\n`);
  let doc = existsSync(c) ? readFileSync(c, 'utf8') : `# Benchmarks\n\n## Results\n\n${BEGIN}\n${END}\n`;
  const i = doc.indexOf(BEGIN);
  const j = doc.indexOf(END);
  if (i < 0 || j < i) {
    doc += `\n## Results\n\n${BEGIN}\n${END}\n`;
  }
  const i2 = doc.indexOf(BEGIN);
  const j2 = doc.indexOf(END);
  doc = `${doc.slice(0, i2 + BEGIN.length)}\n\n${md}\n\n${doc.slice(j2)}`;
  writeFileSync(c, doc);
  console.log(`bench: results written to ${c}`);
} else {
  console.error('usage: report.mjs line JSON | report META RESULTS REPORT.md');
  process.exit(2);
}
