#!/usr/bin/env python3
"""Prints bench/run's table from its results (one JSON object per line): medians
per scenario and agent, logtrain's ratio to each peer, and the targets."""
import json
import statistics
import sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cells = defaultdict(list)
for r in rows:
    cells[(r["scenario"], r["agent"])].append(r)

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def fmt(v, spec):
    return "—" if v is None else format(v, spec)

summary = {}
print("| scenario | agent | runs | lines/s (median) | MB/s | CPU µs/line | peak RSS MB | lossless |")
print("|---|---|---|---|---|---|---|---|")
for sc in ["receiver", "file_tcp", "file_tcp_severity", "file_tcp_exclude", "tcp_tcp", "tcp_stalled_tail", "fanout4"]:
    for agent in ["socat", "logtrain", "rsyslog", "syslog-ng"]:
        rs = cells.get((sc, agent))
        if not rs:
            continue
        per = []
        for r in rs:
            v = r["recv"]
            secs = v["seconds"] or None
            lines = r["lines"]
            per.append({
                "rate": lines / secs if secs else None,
                "mbs": v["bytes"] / secs / 1e6 if secs else None,
                "cpu": r["cpu_s"] * 1e6 / lines if "cpu_s" in r and r["cpu_s"] >= 0 else None,
                "rss": r["rss_kb"] / 1024 if r.get("rss_kb", -1) > 0 else None,
                "ok": v["messages"] == v["expected"] and v["outcome"] == "complete",
            })
        m = {k: med([p[k] for p in per]) for k in ["rate", "mbs", "cpu", "rss"]}
        m["ok"] = all(p["ok"] for p in per)
        summary[(sc, agent)] = m
        print(f"| {sc} | {agent} | {len(rs)} | {fmt(m['rate'], ',.0f')} | {fmt(m['mbs'], '.1f')} | "
              f"{fmt(m['cpu'], '.2f')} | {fmt(m['rss'], '.1f')} | {'yes' if m['ok'] else 'NO'} |")

print()
print("| scenario | agent | peak RSS MB (idle RSS MB) | idle CPU % of a core | freshness p50 / p99 ms | received |")
print("|---|---|---|---|---|---|")
for agent in ["logtrain", "rsyslog", "syslog-ng"]:
    for r in cells.get(("at_rest", agent), []):
        idle_rss = r.get("idle_rss_kb")
        idle_txt = f" ({idle_rss/1024:.1f})" if idle_rss else ""
        print(f"| at_rest (500 files) | {agent} | {r['rss_kb']/1024:.1f}{idle_txt} | {r['idle_cpu_pct']:.2f} | — | "
              f"{r['recv']['messages']}/{r['recv']['expected']} |")
        summary[("at_rest", agent)] = {"rss": r["rss_kb"] / 1024, "idle": r["idle_cpu_pct"],
                                       "idle_rss": (idle_rss or 0) / 1024}
for agent in ["logtrain", "rsyslog", "syslog-ng"]:
    for r in cells.get(("fresh", agent), []):
        f = r["fresh"]
        if not f:
            print(f"| fresh 10k lines/s | {agent} | — | — | failed | — |")
            continue
        print(f"| fresh 10k lines/s | {agent} | — | — | {f['p50_ms']:.1f} / {f['p99_ms']:.1f} | {f['received']}/{f['sent']} |")
        summary[("fresh", agent)] = f
starts = [r["start"].get("ready_ms") for r in cells.get(("start", "logtrain"), [])]
starts = [s for s in starts if s is not None]
if starts:
    print(f"| start to /readyz | logtrain | — | — | median {med(starts):.1f} ms over {len(starts)} | — |")
    summary[("start", "logtrain")] = med(starts)

print()
print("logtrain relative to each peer (throughput: higher is better; CPU and RSS: lower is better)")
print()
print("| scenario | peer | throughput × | CPU/line × | peak RSS × |")
print("|---|---|---|---|---|")
for sc in ["file_tcp", "tcp_tcp", "fanout4"]:
    lt = summary.get((sc, "logtrain"))
    for peer in ["rsyslog", "syslog-ng"]:
        p = summary.get((sc, peer))
        if not lt or not p:
            continue
        def ratio(a, b):
            return "—" if a is None or b in (None, 0) else f"{a / b:.2f}"
        print(f"| {sc} | {peer} | {ratio(lt['rate'], p['rate'])} | {ratio(lt['cpu'], p['cpu'])} | {ratio(lt['rss'], p['rss'])} |")

print()
print("Targets (logtrain)")
def target(name, ok, got):
    print(f"- {name}: {'met' if ok else 'MISSED'} ({got})")
ft = summary.get(("file_tcp", "logtrain"))
if ft and ft["rate"]:
    target("file_tcp >= 1,000,000 lines/s", ft["rate"] >= 1e6, f"{ft['rate']:,.0f}")
    target("file_tcp <= 1 µs CPU/line", ft["cpu"] <= 1.0, f"{ft['cpu']:.2f} µs")
    target("file_tcp peak RSS <= 16 MB", ft["rss"] <= 16, f"{ft['rss']:.1f} MB")
tt = summary.get(("tcp_tcp", "logtrain"))
if tt and tt["rate"]:
    target("tcp_tcp >= 1,000,000 msgs/s", tt["rate"] >= 1e6, f"{tt['rate']:,.0f}")
    target("tcp_tcp <= 1 µs CPU/msg", tt["cpu"] <= 1.0, f"{tt['cpu']:.2f} µs")
    target("tcp_tcp peak RSS <= 16 MB", tt["rss"] <= 16, f"{tt['rss']:.1f} MB")
ts = summary.get(("tcp_stalled_tail", "logtrain"))
if tt and ts and tt["rate"] and ts["rate"]:
    dropped = med([r.get("tail_dropped") for r in cells.get(("tcp_stalled_tail", "logtrain"), [])])
    target("a stalled live-tail client costs the route < 10% of its throughput",
           ts["rate"] >= 0.9 * tt["rate"] and ts["ok"],
           f"{ts['rate']:,.0f} vs {tt['rate']:,.0f} lines/s ({ts['rate'] / tt['rate']:.2f}x), "
           f"{fmt(dropped, ',.0f')} lines dropped from the tail, route lossless: {'yes' if ts['ok'] else 'NO'}")
fo = summary.get(("fanout4", "logtrain"))
if ft and fo and ft["cpu"] and fo["cpu"]:
    target("fan-out to 4 costs < 2x one drain (CPU/line)", fo["cpu"] < 2 * ft["cpu"], f"{fo['cpu'] / ft['cpu']:.2f}x")
ar = summary.get(("at_rest", "logtrain"))
if ar:
    target("at rest, 500 files: peak RSS <= 24 MB", ar["rss"] <= 24, f"{ar['rss']:.1f} MB")
    target("at rest, 500 files: idle CPU < 1% of a core", ar["idle"] < 1, f"{ar['idle']:.2f} %")
fr = summary.get(("fresh", "logtrain"))
if fr:
    target("freshness p99 <= 50 ms at 10k lines/s", fr["p99_ms"] <= 50 and fr["received"] == fr["sent"], f"p99 {fr['p99_ms']:.1f} ms, {fr['received']}/{fr['sent']}")
st = summary.get(("start", "logtrain"))
if st is not None:
    target("start to ready <= 100 ms", st <= 100, f"{st:.1f} ms")


def kube_scale_rows(cells):
    """The kube_scale scenario: logtrain's RSS while listing 10,000 workloads
    and after, the API load it made, and its targets."""
    rs = cells.get(("kube_scale", "logtrain"), [])
    if not rs:
        return
    print()
    print("| kube_scale | peak RSS MB (listing) | RSS MB 10 s after | ready s | list pages | watches | GETs |")
    print("|---|---|---|---|---|---|---|")
    for r in rs:
        api = r.get("api") or {}
        print(f"| run {r['run']} | {r['rss_kb']/1024:.1f} | {r['after_rss_kb']/1024:.1f} | {fmt(r['ready_s'], '.2f')} | "
              f"{api.get('pages', '—')} | {api.get('watches', '—')} | {api.get('gets', '—')} |")
    peak = med([r["rss_kb"] / 1024 for r in rs])
    after = med([r["after_rss_kb"] / 1024 for r in rs])
    target("kube_scale: peak RSS while listing <= 40 MB", peak <= 40, f"{peak:.1f} MB")
    target("kube_scale: RSS after ready <= 24 MB", after <= 24, f"{after:.1f} MB")


kube_scale_rows(cells)
