//! Processing parameters in rows of the Postgres drain table: applied to
//! the container logs of the row's hostname; a row whose pattern does not
//! compile is skipped and told, naming why, and its neighbours work.

use std::time::Duration;

use logtrain::config::Config;

use super::{Node, POD, append, cri, id, messages, start};
use crate::support::postgres::Pg;
use crate::support::{self, read_lines, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rows_parameters_filter_its_drain_and_a_bad_pattern_is_a_bad_row() {
    let logs = support::captured_logs();
    let pg = Pg::shared_or_private();
    let url = pg.fresh_db("lt_drain_params").await;
    let node = Node::new();
    let log = node.pod("default", POD, "web");
    let config = Config {
        postgres: true,
        database_url: Some(url.clone().into()),
        routes: Vec::new(),
        ..node.config(&[])
    };
    // logtrain creates the table on a fresh database.
    let app = start(config).await;
    let (db, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let booms = format!(
        "file://{}?severity=err&match=boom&exclude=ignore",
        node.out("booms.log").display()
    );
    let stderr = format!("file://{}?stream=stderr&rate=1000", node.out("stderr.log").display());
    let bad = "syslog+tcp://127.0.0.1:9?exclude=(x";
    for endpoint in [bad, booms.as_str(), stderr.as_str()] {
        db.execute(
            "insert into drains (hostname, endpoint) values ('web.default', $1)",
            &[&endpoint],
        )
        .await
        .unwrap();
    }
    // The parameters of JSON and syslog drains, for a hostname without records.
    let json = "http://127.0.0.1:9/in?parse=json&labels=app,team";
    let sd = "syslog+tcp://127.0.0.1:9?sd=kubernetes&labels=team";
    for endpoint in [json, sd] {
        db.execute(
            "insert into drains (hostname, endpoint) values ('quiet.default', $1)",
            &[&endpoint],
        )
        .await
        .unwrap();
    }
    let drains = || {
        let mut d: Vec<String> = app
            .routes
            .load()
            .drains_for(b"web.default")
            .iter()
            .map(|d| d.id().to_string())
            .collect();
        d.sort();
        d
    };
    let mut want = vec![id(&booms), id(&stderr)];
    want.sort();
    wait_until("the good rows routed", Duration::from_secs(10), || drains() == want).await;
    assert!(want[0].contains(" params="), "{want:?}");
    let quiet = || -> Vec<String> {
        app.routes
            .load()
            .drains_for(b"quiet.default")
            .iter()
            .map(|d| d.id().to_string())
            .collect()
    };
    wait_until("the quiet rows routed", Duration::from_secs(10), || quiet().len() == 2).await;
    let quiet = quiet();
    assert!(quiet.iter().any(|i| i.ends_with(" params=parse,labels")), "{quiet:?}");
    assert!(quiet.iter().any(|i| i.ends_with(" params=labels,sd")), "{quiet:?}");

    for (stream, msg) in [
        ("stdout", "boom out"),
        ("stderr", "boom err"),
        ("stderr", "boom ignore"),
        ("stderr", "other"),
    ] {
        append(&log, &cri(stream, msg));
    }
    wait_until("stderr lines at their drain", Duration::from_secs(10), || {
        read_lines(&node.out("stderr.log")).len() == 3
    })
    .await;
    let size = std::fs::metadata(&log).unwrap().len();
    wait_until("the checkpoint at the end of the file", Duration::from_secs(10), || {
        node.checkpointed() == Some(size)
    })
    .await;
    assert_eq!(messages(&read_lines(&node.out("booms.log"))), ["boom err"]);
    assert_eq!(
        messages(&read_lines(&node.out("stderr.log"))),
        ["boom err", "boom ignore", "other"]
    );
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    let line = text
        .lines()
        .find(|l| l.contains("Route skipped"))
        .unwrap_or_else(|| panic!("the bad row is not told:\n{text}"));
    assert!(
        line.contains("parameter exclude= is not a usable regular expression (syntax error: unclosed group)"),
        "{line}"
    );
    app.shutdown().await;
}
