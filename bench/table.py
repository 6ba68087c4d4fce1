#!/usr/bin/env python3
"""Prints bench/run's tables from its results (one JSON object per line): medians
per scenario and agent, logtrain's ratio to each peer, and at the end every target
of the performance issue, one line each: figure, target, met or MISSED."""
import json
import statistics
import sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cells = defaultdict(list)
for r in rows:
    cells[(r["scenario"], r["agent"])].append(r)
AGENTS = ["socat", "logtrain", "rsyslog", "syslog-ng"]
PEERS = ["rsyslog", "syslog-ng"]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, spec):
    return "—" if v is None else format(v, spec)


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


summary = {}
print("| scenario | agent | runs | lines/s delivered (median) | MB/s | CPU µs/line sent | peak RSS MB | lossless |")
print("|---|---|---|---|---|---|---|---|")
for sc in ["receiver", "file_tcp", "file_tcp_severity", "file_tcp_exclude", "tcp_tcp", "tcp_stalled_tail",
           "fanout4", "envoy", "http_ndjson"]:
    for agent in AGENTS:
        rs = cells.get((sc, agent))
        if not rs:
            continue
        per = []
        for r in rs:
            v = r["recv"]
            secs = v["seconds"] or None
            lines = r["lines"]
            # Input lines delivered (all of them in a lossless run; fanout4 counts 4 messages a line).
            delivered = lines * v["messages"] / v["expected"] if v["expected"] else lines
            per.append({
                "rate": delivered / secs if secs else None,
                "mbs": v["bytes"] / secs / 1e6 if secs else None,
                "wire_mbs": v["wire_bytes"] / secs / 1e6 if secs and "wire_bytes" in v else None,
                "cpu": r["cpu_s"] * 1e6 / lines if "cpu_s" in r and r["cpu_s"] >= 0 else None,
                "rss": r["rss_kb"] / 1024 if r.get("rss_kb", -1) > 0 else None,
                # A record a full queue refused counts in both the input's and the drain's counter.
                "dropped": max(r.get("input_dropped") or 0, r.get("drain_dropped") or 0),
                "gzip": v.get("gzip_requests"),
                "ok": v["messages"] == v["expected"] and v["outcome"] == "complete",
            })
        m = {k: med([p[k] for p in per]) for k in ["rate", "mbs", "wire_mbs", "cpu", "rss", "dropped", "gzip"]}
        m["ok"] = all(p["ok"] for p in per)
        summary[(sc, agent)] = m
        print(f"| {sc} | {agent} | {len(rs)} | {fmt(m['rate'], ',.0f')} | {fmt(m['mbs'], '.1f')} | "
              f"{fmt(m['cpu'], '.2f')} | {fmt(m['rss'], '.1f')} | {'yes' if m['ok'] else 'NO'} |")
ht = summary.get(("http_ndjson", "logtrain"))
if ht:
    print()
    print(f"http_ndjson: {fmt(ht['rate'], ',.0f')} records/s, {fmt(ht['mbs'], '.1f')} MB/s of NDJSON, "
          f"{fmt(ht['wire_mbs'], '.1f')} MB/s gzipped on the wire ({fmt(ht['gzip'], '.0f')} gzip requests per run), "
          f"{fmt(ht['cpu'], '.2f')} µs CPU per record")
ev = summary.get(("envoy", "logtrain"))
if ev:
    print(f"envoy: {fmt(ev['rate'], ',.0f')} entries/s delivered, {fmt(ev['cpu'], '.2f')} µs CPU per entry sent, "
          f"{fmt(ev['dropped'], ',.0f')} dropped by logtrain (a full drain queue drops what a push input offers)")

# UDP: lossy by nature; every side's count.
udp_rows = [(a, cells.get(("udp_tcp", a))) for a in ["logtrain", "rsyslog", "syslog-ng"] if cells.get(("udp_tcp", a))]
if udp_rows:
    print()
    print("| udp_tcp | runs | offered msgs/s | sent | received | lost % | delivered msgs/s | CPU µs/msg received "
          "| peak RSS MB | kernel UDP drops (InErrors / RcvbufErrors) | agent's own drops |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for agent, rs in udp_rows:
        per = []
        for r in rs:
            load, v = r.get("load") or {}, r["recv"]
            sent, got = load.get("sent", r["lines"]), v["messages"]
            secs = load.get("seconds")
            own = None
            if "input_dropped" in r:
                own = max(r["input_dropped"], r["drain_dropped"]) + r["input_memory_exhausted"]
            elif r.get("agent_dropped") is not None:
                own = r["agent_dropped"]
            per.append({
                "offered": load.get("msgs_per_s"), "sent": sent, "got": got,
                "lost": (sent - got) * 100 / sent if sent else None,
                "rate": got / secs if secs else None,
                "cpu": r["cpu_s"] * 1e6 / got if got and r["cpu_s"] >= 0 else None,
                "rss": r["rss_kb"] / 1024 if r.get("rss_kb", -1) > 0 else None,
                "kin": r.get("udp_in_errors"), "kbuf": r.get("udp_rcvbuf_errors"), "own": own,
            })
        m = {k: med([p[k] for p in per]) for k in per[0]}
        summary[("udp_tcp", agent)] = m
        own = "—" if m["own"] is None else f"{m['own']:,.0f}"
        print(f"| {agent} | {len(rs)} | {fmt(m['offered'], ',.0f')} | {fmt(m['sent'], ',.0f')} | {fmt(m['got'], ',.0f')} | "
              f"{fmt(m['lost'], '.1f')} | {fmt(m['rate'], ',.0f')} | {fmt(m['cpu'], '.2f')} | {fmt(m['rss'], '.1f')} | "
              f"{fmt(m['kin'], ',.0f')} / {fmt(m['kbuf'], ',.0f')} | {own} |")

print()
print("| scenario | agent | peak RSS MB (idle RSS MB) | idle CPU % of a core | latency p50 / p99 ms | received |")
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
for agent in ["logtrain", "rsyslog", "syslog-ng"]:
    for r in cells.get(("fairness", agent), []):
        f = r["fair"]
        if not f:
            print(f"| fairness | {agent} | — | — | failed | — |")
            continue
        print(f"| fairness: {f['files']} quiet files beside a {f['backlog_lines']:,}-line backlog "
              f"(drained in {f['backlog_drain_s']:.1f} s) | {agent} | — | — | "
              f"{f['p50_ms']:.1f} / {f['p99_ms']:.1f}; while draining ({f['during']} lines) "
              f"{f['during_p50_ms']:.1f} / {f['during_p99_ms']:.1f} | {f['received']}/{f['sent']} quiet, "
              f"{f['messages']}/{f['expected']} in all |")
        summary[("fairness", agent)] = f
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
for sc in ["file_tcp", "tcp_tcp", "fanout4", "udp_tcp"]:
    lt = summary.get((sc, "logtrain"))
    for peer in PEERS:
        p = summary.get((sc, peer))
        if not lt or not p:
            continue
        print(f"| {sc} | {peer} | {fmt(ratio(lt['rate'], p['rate']), '.2f')} | {fmt(ratio(lt['cpu'], p['cpu']), '.2f')} | "
              f"{fmt(ratio(lt['rss'], p['rss']), '.2f')} |")


# ---- targets: one line each, figure, target, met or MISSED ----------------------------------
targets = []


def target(name, figure, goal, ok):
    targets.append(f"- {name}: {figure} (target {goal}): {'met' if ok else 'MISSED'}")


def best_lossless_peer(sc):
    ps = [(summary[(sc, p)]["rate"], p) for p in PEERS
          if (sc, p) in summary and summary[(sc, p)]["ok"] and summary[(sc, p)]["rate"]]
    return max(ps) if ps else (None, None)


for sc, times, cpu_max, label in [("file_tcp", 8, 0.6, "line"), ("tcp_tcp", 2, 1.0, "message")]:
    lt = summary.get((sc, "logtrain"))
    if not lt or not lt["rate"]:
        continue
    rate, peer = best_lossless_peer(sc)
    if peer:
        x = lt["rate"] / rate
        target(f"{sc} throughput against the best lossless peer",
               f"{x:.2f}× ({lt['rate']:,.0f} against {peer}'s {rate:,.0f}/s{'' if lt['ok'] else ', logtrain NOT lossless'})",
               f"≥ {times}×", x >= times and lt["ok"])
    elif any((sc, p) in summary for p in PEERS):
        target(f"{sc} throughput against the best lossless peer", "no lossless peer in this run", f"≥ {times}×", False)
    target(f"{sc} CPU per {label}", f"{lt['cpu']:.2f} µs", f"≤ {cpu_max} µs", lt["cpu"] <= cpu_max)
    target(f"{sc} peak RSS", f"{lt['rss']:.1f} MB", "≤ 16 MB", lt["rss"] <= 16)
ul, ur = summary.get(("udp_tcp", "logtrain")), summary.get(("udp_tcp", "rsyslog"))
if ul and ur and ul["rate"] and ur["rate"]:
    x = ul["rate"] / ur["rate"]
    target("udp_tcp delivered msgs/s against rsyslog's imudp",
           f"{x:.2f}× ({ul['rate']:,.0f} against {ur['rate']:,.0f} at {fmt(ul['offered'], ',.0f')} offered; "
           f"lost {ul['lost']:.1f} % against {ur['lost']:.1f} %)", "≥ 2×", x >= 2)
if ev:
    target("envoy entries delivered (gRPC AccessLogService)",
           f"{fmt(ev['rate'], ',.0f')} entries/s, {fmt(ev['cpu'], '.2f')} µs/entry, "
           f"{'all delivered' if ev['ok'] else 'NOT all delivered'}, {fmt(ev['dropped'], ',.0f')} dropped",
           "every entry delivered (figures reported, no rate target)", ev["ok"])
if ht:
    target("http_ndjson records delivered (gzip on)",
           f"{fmt(ht['rate'], ',.0f')} records/s, {fmt(ht['mbs'], '.1f')} MB/s NDJSON, {fmt(ht['wire_mbs'], '.1f')} MB/s gzipped, "
           f"{'all delivered' if ht['ok'] else 'NOT all delivered'}",
           "every record delivered, gzipped (figures reported, no rate target)", ht["ok"] and (ht["gzip"] or 0) > 0)
fa = summary.get(("fairness", "logtrain"))
if fa:
    p99 = fa["during_p99_ms"] if fa["during"] else fa["p99_ms"]
    complete = fa["received"] == fa["sent"] and fa["messages"] == fa["expected"]
    peers = "; ".join(f"{p} {summary[('fairness', p)]['during_p99_ms']:.1f} ms" for p in PEERS if ("fairness", p) in summary)
    target("fairness: quiet files' p99 latency while a backlog drains",
           f"{p99:.1f} ms ({fa['received']}/{fa['sent']} quiet lines, backlog {fa['messages'] - fa['received']:,}/"
           f"{fa['backlog_lines']:,}{'; peers ' + peers if peers else ''})", "≤ 50 ms", p99 <= 50 and complete)
ar = summary.get(("at_rest", "logtrain"))
if ar:
    target("at rest, 500 files: peak RSS", f"{ar['rss']:.1f} MB", "≤ 16 MB", ar["rss"] <= 16)
    target("at rest, 500 files: idle RSS", f"{ar['idle_rss']:.1f} MB", "≤ 16 MB", ar["idle_rss"] <= 16)
    target("at rest, 500 files: idle CPU", f"{ar['idle']:.2f} % of a core", "≤ 0.3 %", ar["idle"] <= 0.3)
ft, fo = summary.get(("file_tcp", "logtrain")), summary.get(("fanout4", "logtrain"))
if ft and fo and ft["cpu"] and fo["cpu"]:
    x = fo["cpu"] / ft["cpu"]
    target("fan-out to 4 drains: CPU per line against one drain", f"{x:.2f}× ({fo['cpu']:.2f} against {ft['cpu']:.2f} µs)",
           "≤ 1.5×", x <= 1.5)
tt, ts = summary.get(("tcp_tcp", "logtrain")), summary.get(("tcp_stalled_tail", "logtrain"))
if tt and ts and tt["rate"] and ts["rate"]:
    dropped = med([r.get("tail_dropped") for r in cells.get(("tcp_stalled_tail", "logtrain"), [])])
    target("a stalled live-tail client: the route's throughput against tcp_tcp",
           f"{ts['rate'] / tt['rate']:.2f}× ({ts['rate']:,.0f} against {tt['rate']:,.0f}/s, "
           f"{fmt(dropped, ',.0f')} lines dropped from the tail, route lossless: {'yes' if ts['ok'] else 'NO'})",
           "≥ 0.9×, lossless", ts["rate"] >= 0.9 * tt["rate"] and ts["ok"])
fr = summary.get(("fresh", "logtrain"))
if fr:
    target("freshness at 10k lines/s: p99", f"{fr['p99_ms']:.1f} ms ({fr['received']}/{fr['sent']})", "≤ 50 ms",
           fr["p99_ms"] <= 50 and fr["received"] == fr["sent"])
st = summary.get(("start", "logtrain"))
if st is not None:
    target("start to /readyz", f"{st:.1f} ms", "≤ 100 ms", st <= 100)


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
    target("kube_scale: peak RSS while listing", f"{peak:.1f} MB", "≤ 40 MB", peak <= 40)
    target("kube_scale: RSS 10 s after ready", f"{after:.1f} MB", "≤ 24 MB", after <= 24)


kube_scale_rows(cells)

print()
print("Targets (logtrain): figure (target): met or MISSED")
for t in targets:
    print(t)
if targets:
    print(f"{sum(t.endswith(': met') for t in targets)} of {len(targets)} targets met")
