//! The process's own series, read from `/proc` when `/metrics` is rendered
//! (nothing runs between scrapes): resident and virtual memory, CPU seconds,
//! open and maximum file descriptors, start time, and `logtrain_build_info`.
//! Names and meanings are the Prometheus client libraries' `process_*`
//! collector's, so existing dashboards and alerts work unchanged. Where `/proc`
//! is missing (not Linux), only the build info is written.

use std::fmt::Write as _;

/// `(name, kind, help)` of each series written here.
pub const SERIES: &[(&str, &str, &str)] = &[
    (
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time spent in seconds.",
    ),
    (
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    ),
    ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes."),
    ("process_open_fds", "gauge", "Number of open file descriptors."),
    ("process_max_fds", "gauge", "Maximum number of open file descriptors."),
    (
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    ),
    (
        "logtrain_build_info",
        "gauge",
        "Always 1; the labels say which build is running (version, target architecture and OS).",
    ),
];

/// Clock ticks per second of `/proc/*/stat` times: 100 on every Linux
/// architecture logtrain is built for (USER_HZ, fixed by the kernel ABI).
const TICKS: f64 = 100.0;

/// Appends the series; `openmetrics` drops `_total` from a counter's TYPE line.
pub fn render(out: &mut String, openmetrics: bool) {
    let values = read();
    for (name, kind, help) in SERIES {
        let value = match *name {
            "logtrain_build_info" => Some(1.0),
            n => values.iter().find(|(k, _)| *k == n).map(|(_, v)| *v),
        };
        let Some(value) = value else { continue };
        let family = if openmetrics && *kind == "counter" {
            name.trim_end_matches("_total")
        } else {
            name
        };
        let _ = writeln!(out, "# HELP {family} {help}");
        let _ = writeln!(out, "# TYPE {family} {kind}");
        if *name == "logtrain_build_info" {
            let _ = writeln!(
                out,
                "{name}{{version=\"{}\",arch=\"{}\",os=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::ARCH,
                std::env::consts::OS
            );
        } else {
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

/// What `/proc` tells now; missing files leave their series out.
fn read() -> Vec<(&'static str, f64)> {
    let mut v = Vec::new();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, r)| r)
            .split_whitespace()
            .collect();
        let num = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        // stat(5) fields 14 and 15 (utime, stime), 22 (starttime), 23 (vsize), 24 (rss);
        // `fields` starts at field 3.
        if let (Some(u), Some(s)) = (num(11), num(12)) {
            v.push(("process_cpu_seconds_total", (u + s) / TICKS));
        }
        if let (Some(start), Some(boot)) = (num(19), boot_time()) {
            v.push(("process_start_time_seconds", boot + start / TICKS));
        }
        if let Some(vsize) = num(20) {
            v.push(("process_virtual_memory_bytes", vsize));
        }
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
        if let Some(kb) = kb {
            v.push(("process_resident_memory_bytes", kb * 1024.0));
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        v.push(("process_open_fds", fds.count() as f64));
    }
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        let max = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|s| s.parse::<f64>().ok());
        if let Some(max) = max {
            v.push(("process_max_fds", max));
        }
    }
    v
}

/// Boot time in seconds since the epoch (`btime` of `/proc/stat`).
fn boot_time() -> Option<f64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_series_are_read_from_proc() {
        let mut out = String::new();
        render(&mut out, false);
        let value = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no {name} in\n{out}"))
        };
        assert!(value("process_resident_memory_bytes") > 1e5);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(start <= now + 1.0 && start > now - 3600.0, "{start} vs {now}");
        assert!(value("process_cpu_seconds_total") >= 0.0);
        assert!(out.contains(&format!(
            "logtrain_build_info{{version=\"{}\"",
            env!("CARGO_PKG_VERSION")
        )));
        let mut om = String::new();
        render(&mut om, true);
        assert!(om.contains("# TYPE process_cpu_seconds counter"), "{om}");
    }
}
