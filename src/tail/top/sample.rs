//! What `logtrain top` reads from one node: the drain and input series of its
//! `/metrics` page (Prometheus text), and the per-second rates between two
//! readings. Pure functions; unknown series are ignored, so an older or newer
//! logtrain on the other end shows what both know.

use std::collections::BTreeMap;

/// One drain's numbers as read (counters are totals, gauges are current).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DrainNumbers {
    pub sent: f64,
    pub dropped: f64,
    pub errors: f64,
    pub queue: f64,
    pub connections: f64,
}

/// One input's totals as read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct InputNumbers {
    pub records: f64,
    pub parse_errors: f64,
    pub dropped: f64,
}

/// One reading of one node's `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    pub drains: BTreeMap<String, DrainNumbers>,
    pub inputs: BTreeMap<String, InputNumbers>,
}

impl Sample {
    /// Reads the series `top` shows from a Prometheus text page.
    pub fn parse(page: &str) -> Sample {
        let mut s = Sample::default();
        for line in page.lines() {
            let Some((name, labels, value)) = split_line(line) else {
                continue;
            };
            if let Some(field) = name.strip_prefix("logtrain_drain_") {
                let Some(id) = label(labels, "drain") else { continue };
                let d = s.drains.entry(id).or_default();
                match field {
                    "sent_total" => d.sent = value,
                    "dropped_total" => d.dropped = value,
                    "errors_total" => d.errors = value,
                    "queue_records" => d.queue = value,
                    "connections" => d.connections = value,
                    _ => {}
                }
            } else if let Some(field) = name.strip_prefix("logtrain_input_") {
                let Some(input) = label(labels, "input") else { continue };
                let i = s.inputs.entry(input).or_default();
                match field {
                    "records_total" => i.records += value,
                    "parse_errors_total" => i.parse_errors += value,
                    "dropped_total" => i.dropped += value,
                    _ => {}
                }
            }
        }
        s
    }
}

/// A drain's row: rates over the interval, gauges as last read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DrainRow {
    pub node: String,
    pub id: String,
    pub sent: f64,
    pub dropped: f64,
    pub errors: f64,
    pub queue: f64,
    pub connections: f64,
}

/// An input's row: rates over the interval.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InputRow {
    pub node: String,
    pub input: String,
    pub records: f64,
    pub parse_errors: f64,
    pub dropped: f64,
}

/// Per-second rates from `prev` to `cur`, `secs` apart. A counter that went
/// down (the process restarted) counts from zero; a series new in `cur`
/// shows no rate until the next reading.
pub fn rates(node: &str, prev: &Sample, cur: &Sample, secs: f64) -> (Vec<DrainRow>, Vec<InputRow>) {
    let per_sec = |now: f64, before: Option<f64>| match before {
        None => 0.0,
        Some(b) if now >= b => (now - b) / secs.max(1e-3),
        Some(_) => now / secs.max(1e-3),
    };
    let drains = cur
        .drains
        .iter()
        .map(|(id, d)| {
            let p = prev.drains.get(id);
            DrainRow {
                node: node.to_string(),
                id: id.clone(),
                sent: per_sec(d.sent, p.map(|p| p.sent)),
                dropped: per_sec(d.dropped, p.map(|p| p.dropped)),
                errors: per_sec(d.errors, p.map(|p| p.errors)),
                queue: d.queue,
                connections: d.connections,
            }
        })
        .collect();
    let inputs = cur
        .inputs
        .iter()
        .map(|(name, i)| {
            let p = prev.inputs.get(name);
            InputRow {
                node: node.to_string(),
                input: name.clone(),
                records: per_sec(i.records, p.map(|p| p.records)),
                parse_errors: per_sec(i.parse_errors, p.map(|p| p.parse_errors)),
                dropped: per_sec(i.dropped, p.map(|p| p.dropped)),
            }
        })
        .collect();
    (drains, inputs)
}

/// Rows of every node summed by drain id and by input, node column `*`.
pub fn merge(drains: Vec<DrainRow>, inputs: Vec<InputRow>) -> (Vec<DrainRow>, Vec<InputRow>) {
    let mut d: BTreeMap<String, DrainRow> = BTreeMap::new();
    for r in drains {
        let m = d.entry(r.id.clone()).or_insert_with(|| DrainRow {
            node: "*".into(),
            id: r.id.clone(),
            ..DrainRow::default()
        });
        m.sent += r.sent;
        m.dropped += r.dropped;
        m.errors += r.errors;
        m.queue += r.queue;
        m.connections += r.connections;
    }
    let mut i: BTreeMap<String, InputRow> = BTreeMap::new();
    for r in inputs {
        let m = i.entry(r.input.clone()).or_insert_with(|| InputRow {
            node: "*".into(),
            input: r.input.clone(),
            ..InputRow::default()
        });
        m.records += r.records;
        m.parse_errors += r.parse_errors;
        m.dropped += r.dropped;
    }
    (d.into_values().collect(), i.into_values().collect())
}

/// `name{labels} value` (labels may be absent); comments and junk are `None`.
fn split_line(line: &str) -> Option<(&str, &str, f64)> {
    if line.starts_with('#') {
        return None;
    }
    let (series, value) = line.trim_end().rsplit_once(' ')?;
    let value = value.parse().ok()?;
    match series.split_once('{') {
        Some((name, rest)) => Some((name, rest.strip_suffix('}')?, value)),
        None => Some((series, "", value)),
    }
}

/// The value of label `key` in `a="x",b="y"`, unescaped.
fn label(labels: &str, key: &str) -> Option<String> {
    let mut rest = labels;
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        if k.trim_start_matches(',') == key {
            return Some(value);
        }
        rest = &after[end + 1..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP logtrain_drain_sent_total Records a drain delivered.
# TYPE logtrain_drain_sent_total counter
logtrain_drain_sent_total{drain="syslog+tcp://a:514#0123abcd"} 100
logtrain_drain_dropped_total{drain="syslog+tcp://a:514#0123abcd"} 4
logtrain_drain_queue_records{drain="syslog+tcp://a:514#0123abcd"} 7
logtrain_drain_connections{drain="syslog+tcp://a:514#0123abcd"} 2
logtrain_drain_sent_total{drain="odd \"id\\x\""} 1
logtrain_input_records_total{input="syslog_tcp"} 50
logtrain_input_dropped_total{input="syslog_tcp",drain="x"} 3
logtrain_input_parse_errors_total{input="syslog_tcp"} 1
logtrain_up 1
"#;

    #[test]
    fn reads_drain_and_input_series_with_escaped_labels() {
        let s = Sample::parse(PAGE);
        let d = s.drains["syslog+tcp://a:514#0123abcd"];
        assert_eq!((d.sent, d.dropped, d.queue, d.connections), (100.0, 4.0, 7.0, 2.0));
        assert_eq!(s.drains["odd \"id\\x\""].sent, 1.0);
        let i = s.inputs["syslog_tcp"];
        assert_eq!((i.records, i.parse_errors, i.dropped), (50.0, 1.0, 3.0));
    }

    #[test]
    fn rates_are_per_second_and_a_restart_counts_from_zero() {
        let prev = Sample::parse(PAGE);
        let mut cur = prev.clone();
        cur.drains.get_mut("syslog+tcp://a:514#0123abcd").unwrap().sent = 300.0;
        cur.inputs.get_mut("syslog_tcp").unwrap().records = 10.0;
        let (d, i) = rates("n1", &prev, &cur, 2.0);
        let a = d.iter().find(|r| r.id.starts_with("syslog")).unwrap();
        assert_eq!((a.sent, a.dropped, a.queue), (100.0, 0.0, 7.0));
        assert_eq!(i[0].records, 5.0);
        let (d, _) = rates("n1", &Sample::default(), &cur, 1.0);
        assert!(d.iter().all(|r| r.sent == 0.0), "no rate for a series first seen");
    }

    #[test]
    fn merging_sums_every_node() {
        let row = |node: &str, sent| DrainRow {
            node: node.into(),
            id: "d".into(),
            sent,
            queue: 1.0,
            ..DrainRow::default()
        };
        let (d, _) = merge(vec![row("a", 2.0), row("b", 3.0)], vec![]);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].node.as_str(), d[0].sent, d[0].queue), ("*", 5.0, 2.0));
    }
}
