//! How `logtrain top` draws one frame: a title line, the drains table
//! (busiest first) and the inputs table, and a line naming the nodes that did
//! not answer. Pure rendering onto a ratatui `Frame`, so a test backend can
//! check it.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Row, Table};

use super::sample::{DrainRow, InputRow};

/// Everything one frame shows.
#[derive(Debug, Default)]
pub struct View {
    pub nodes: usize,
    pub interval_secs: u64,
    pub drains: Vec<DrainRow>,
    pub inputs: Vec<InputRow>,
    /// `(node, why)` for each node that did not answer this round.
    pub unreachable: Vec<(String, String)>,
    /// Rows per node rather than summed over nodes.
    pub by_node: bool,
}

/// A rate or count, short: `0`, `12.5`, `3.4k`, `1.2M`.
pub fn short(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v if v == v.trunc() => format!("{v:.0}"),
        v => format!("{v:.1}"),
    }
}

pub fn draw(f: &mut Frame, view: &View) {
    let [title, drains, inputs, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(3),
        Constraint::Fill(2),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let bold = Style::default().add_modifier(Modifier::BOLD);
    f.render_widget(
        Line::from(format!(
            "logtrain top: {} node{}, every {}s{}; q quits",
            view.nodes,
            if view.nodes == 1 { "" } else { "s" },
            view.interval_secs,
            if view.by_node {
                ", per node"
            } else {
                ", summed over nodes"
            },
        ))
        .style(bold),
        title,
    );

    let mut d: Vec<&DrainRow> = view.drains.iter().collect();
    d.sort_by(|a, b| b.sent.total_cmp(&a.sent).then_with(|| a.id.cmp(&b.id)));
    let rows: Vec<(&str, Vec<String>)> = d
        .iter()
        .map(|r| {
            let n = [r.sent, r.dropped, r.errors, r.queue, r.connections];
            (
                r.node.as_str(),
                std::iter::once(r.id.clone()).chain(n.map(short)).collect(),
            )
        })
        .collect();
    let columns = [
        ("DRAIN", 0),
        ("SENT/s", 9),
        ("DROP/s", 9),
        ("ERR/s", 8),
        ("QUEUE", 8),
        ("CONN", 5),
    ];
    f.render_widget(table(" drains ", &columns, rows, view.by_node), drains);

    let rows: Vec<(&str, Vec<String>)> = view
        .inputs
        .iter()
        .map(|r| {
            let n = [r.records, r.parse_errors, r.dropped];
            (
                r.node.as_str(),
                std::iter::once(r.input.clone()).chain(n.map(short)).collect(),
            )
        })
        .collect();
    let columns = [("INPUT", 0), ("RECORDS/s", 10), ("PARSE ERR/s", 12), ("DROP/s", 9)];
    f.render_widget(table(" inputs ", &columns, rows, view.by_node), inputs);

    let footer_text = if view.unreachable.is_empty() {
        "every node answered".to_string()
    } else {
        let names: Vec<String> = view.unreachable.iter().map(|(n, why)| format!("{n}: {why}")).collect();
        format!("not answering: {}", names.join("; "))
    };
    f.render_widget(Line::from(footer_text), footer);
}

/// A bordered table titled with its row count: `columns` are (head, width; 0
/// fills), each row its node and cells; a NODE column first when per node.
fn table<'a>(title: &str, columns: &[(&'a str, u16)], rows: Vec<(&str, Vec<String>)>, by_node: bool) -> Table<'a> {
    let node = by_node.then_some(("NODE", 24));
    let columns: Vec<(&str, u16)> = node.into_iter().chain(columns.iter().copied()).collect();
    let widths = columns.iter().map(|&(_, w)| {
        if w == 0 {
            Constraint::Fill(1)
        } else {
            Constraint::Length(w)
        }
    });
    let head = Row::new(columns.iter().map(|&(h, _)| h)).style(Style::default().add_modifier(Modifier::BOLD));
    let title = format!("{title}({}) ", rows.len());
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|(n, cells)| Row::new(by_node.then(|| n.to_string()).into_iter().chain(cells)))
        .collect();
    Table::new(rows, widths)
        .header(head)
        .block(Block::bordered().title(title))
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;

    fn screen(view: &View) -> String {
        let mut t = Terminal::new(TestBackend::new(100, 20)).unwrap();
        t.draw(|f| draw(f, view)).unwrap();
        let buf = t.backend().buffer().clone();
        let mut out = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                out.push_str(buf[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }

    #[test]
    fn the_busiest_drain_comes_first_and_silent_nodes_are_named() {
        let view = View {
            nodes: 2,
            interval_secs: 1,
            drains: vec![
                DrainRow {
                    id: "syslog+tcp://quiet:514#00000001".into(),
                    sent: 2.0,
                    ..DrainRow::default()
                },
                DrainRow {
                    id: "https://busy:443#00000002".into(),
                    sent: 12_500.0,
                    dropped: 3.0,
                    queue: 40.0,
                    connections: 2.0,
                    ..DrainRow::default()
                },
            ],
            inputs: vec![InputRow {
                input: "syslog_tcp".into(),
                records: 12_502.0,
                ..InputRow::default()
            }],
            unreachable: vec![("http://10.0.0.9:9000".into(), "cannot connect".into())],
            by_node: false,
        };
        let s = screen(&view);
        assert!(s.contains("logtrain top: 2 nodes, every 1s"), "{s}");
        let busy = s.find("https://busy:443#00000002").expect("busy drain shown");
        let quiet = s.find("syslog+tcp://quiet:514#00000001").expect("quiet drain shown");
        assert!(busy < quiet, "sorted by rate:\n{s}");
        assert!(s.contains("12.5k"), "{s}");
        assert!(s.contains("syslog_tcp"), "{s}");
        assert!(s.contains("not answering: http://10.0.0.9:9000: cannot connect"), "{s}");
        assert!(!s.contains("NODE"), "no node column when summed:\n{s}");
        let per_node = screen(&View {
            by_node: true,
            drains: vec![DrainRow {
                node: "http://10.0.0.8:9000".into(),
                id: "d".into(),
                ..DrainRow::default()
            }],
            ..View::default()
        });
        assert!(
            per_node.contains("NODE") && per_node.contains("http://10.0.0.8:9000"),
            "{per_node}"
        );
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(2.5), "2.5");
        assert_eq!(short(12_345.0), "12.3k");
        assert_eq!(short(3_400_000.0), "3.4M");
    }
}
