//! `logtrain top`: a terminal dashboard of drains (records/s sent, dropped,
//! errors, queue, connections) and inputs (records/s, parse errors, drops),
//! read every interval from the `/metrics` page of each node the client
//! finds (the same `--endpoint`s or pod proxy as `logtrain tail`), summed
//! over nodes or per node. `q`, Esc or Ctrl-C quits. Reads only: it never
//! changes what the nodes do.
//!
//! `sample` turns pages into rates, `view` draws a frame; this file holds the
//! loop, the terminal and the keyboard.

pub mod sample;
pub mod view;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use ratatui::crossterm::event::{Event, KeyCode, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc;

use super::client::{self, Nodes, Target};
use sample::Sample;
use view::View;

/// `logtrain top`.
#[derive(clap::Args, Debug)]
pub struct TopArgs {
    #[command(flatten)]
    pub nodes: Nodes,
    /// Seconds between readings.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub interval: u64,
    /// One row per node rather than sums over every node.
    #[arg(long)]
    pub by_node: bool,
}

/// Runs until `q`, Esc or Ctrl-C.
pub async fn top(args: TopArgs) -> ExitCode {
    let targets = match client::targets(&args.nodes).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // crossterm reads the keyboard blocking: a thread of its own, handing
    // events over a small channel (it ends with the process).
    let (tx, events) = mpsc::channel(16);
    std::thread::spawn(move || {
        while let Ok(e) = ratatui::crossterm::event::read() {
            if tx.blocking_send(e).is_err() {
                return;
            }
        }
    });
    let mut terminal = ratatui::init();
    let outcome = run(&mut terminal, &args, &targets, events).await;
    ratatui::restore();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot draw: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    terminal: &mut ratatui::DefaultTerminal,
    args: &TopArgs,
    targets: &[Target],
    mut events: mpsc::Receiver<Event>,
) -> std::io::Result<()> {
    let every = Duration::from_secs(args.interval);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut prev: HashMap<String, (Instant, Sample)> = HashMap::new();
    let mut view = View {
        nodes: targets.len(),
        interval_secs: args.interval,
        by_node: args.by_node,
        ..View::default()
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {
                read_all(targets, &args.nodes, every, &mut prev, &mut view).await;
                terminal.draw(|f| view::draw(f, &view))?;
            }
            e = events.recv() => match e {
                None => return Ok(()),
                Some(Event::Key(k)) if k.kind == KeyEventKind::Press && quits(k.code, k.modifiers) => return Ok(()),
                Some(Event::Resize(..)) => {
                    terminal.draw(|f| view::draw(f, &view))?;
                }
                Some(_) => {}
            },
        }
    }
}

fn quits(code: KeyCode, modifiers: KeyModifiers) -> bool {
    matches!(code, KeyCode::Char('q') | KeyCode::Esc)
        || (code == KeyCode::Char('c') && modifiers.contains(KeyModifiers::CONTROL))
}

/// One reading of every node, at once; each waits at most one interval.
async fn read_all(
    targets: &[Target],
    nodes: &Nodes,
    every: Duration,
    prev: &mut HashMap<String, (Instant, Sample)>,
    view: &mut View,
) {
    let mut reads = tokio::task::JoinSet::new();
    for t in targets {
        let (t, token) = (t.clone(), client::token_for(t, nodes));
        reads.spawn(async move {
            let page = tokio::time::timeout(every, async {
                let body = client::get(&t, "/metrics", token.as_deref()).await?.into_body();
                Ok::<_, client::ClientError>(body.collect().await?.to_bytes())
            })
            .await;
            (t.to_string(), page)
        });
    }
    let (mut drains, mut inputs, mut unreachable) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(Ok((node, page))) = reads.join_next().await {
        let page = match page {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                unreachable.push((node, e.to_string()));
                continue;
            }
            Err(_) => {
                unreachable.push((node, "no answer within the interval".into()));
                continue;
            }
        };
        let now = Instant::now();
        let cur = Sample::parse(&String::from_utf8_lossy(&page));
        let (d, i) = match prev.get(&node) {
            Some((then, before)) => sample::rates(&node, before, &cur, now.duration_since(*then).as_secs_f64()),
            None => sample::rates(&node, &cur, &cur, 1.0),
        };
        drains.extend(d);
        inputs.extend(i);
        prev.insert(node, (now, cur));
    }
    unreachable.sort();
    if !view.by_node {
        (drains, inputs) = sample::merge(drains, inputs);
    } else {
        drains.sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
        inputs.sort_by(|a, b| (&a.node, &a.input).cmp(&(&b.node, &b.input)));
    }
    view.drains = drains;
    view.inputs = inputs;
    view.unreachable = unreachable;
}
