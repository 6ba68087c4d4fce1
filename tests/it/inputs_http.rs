//! The HTTP server against `curl`: syslog POSTs in logplex (octet-counted) and
//! newline framing, JSON events, health, readiness and metrics, and every
//! refusal (401, 404, 405, 400 naming the bad frame, 413, 503 with Retry-After
//! while a drain's queue is full).

use crate::support;

use std::time::Duration;

use logtrain::config::Config;
use support::inputs::{Counts, serial, start, start_to};
use tokio::process::Command;

/// A curl response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

async fn curl(args: &[&str]) -> Reply {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "20", "-H", "Expect:"])
        .args(args)
        .output()
        .await
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        headers: head.to_string(),
        body: body.to_string(),
    }
}

fn http_config() -> Config {
    Config {
        http_syslog: true,
        http_events: true,
        ..crate::support::config()
    }
}

fn octet(frames: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        out.extend_from_slice(format!("{} ", f.len()).as_bytes());
        out.extend_from_slice(f);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_posts_syslog_in_logplex_and_newline_framing() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let mut lt = start(dir.path(), http_config(), &["web.default"]).await;
    let url = format!("http://{}/syslog", lt.at.http);
    let before = Counts::of("http_syslog");

    let logplex = octet(&[
        b"<190>1 2024-03-21T22:52:26.181512+00:00 web.default app web.1 - State changed from starting to up",
        b"<174>1 2024-03-21T22:52:27+00:00 web.default router - - at=info path=\"/\" status=200\n",
    ]);
    let body = dir.path().join("logplex.bin");
    std::fs::write(&body, &logplex).unwrap();
    let r = curl(&[
        "-H",
        "Content-Type: application/logplex-1",
        "-H",
        "Logplex-Msg-Count: 2",
        "--data-binary",
        &format!("@{}", body.display()),
        &url,
    ])
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "accepted 2\n"), "{r:?}");

    let lines_body = b"<14>1 2024-01-02T03:04:05Z web.default batch 7 M [x@1 q=\"a\\\"b\"] first \xff bytes\n\
<11>1 2024-01-02T03:04:06Z web.default batch 7 - - second\r\n"
        .to_vec();
    std::fs::write(&body, &lines_body).unwrap();
    let r = curl(&["--data-binary", &format!("@{}", body.display()), &url]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "accepted 2\n"), "{r:?}");

    let lines = lt.records(4).await;
    let l = &lines[0];
    assert_eq!(
        (
            l.pri,
            l.timestamp.as_str(),
            l.app_name.as_str(),
            l.procid.as_str(),
            l.msgid.as_str()
        ),
        (190, "2024-03-21T22:52:26.181512Z", "app", "web.1", "")
    );
    assert_eq!(
        (l.sd.as_str(), l.msg_str().as_str()),
        ("", "State changed from starting to up")
    );
    assert_eq!(
        (lines[1].pri, lines[1].app_name.as_str(), lines[1].msg_str().as_str()),
        (174, "router", "at=info path=\"/\" status=200")
    );
    let l = &lines[2];
    assert_eq!((l.pri, l.procid.as_str(), l.msgid.as_str()), (14, "7", "M"));
    assert_eq!(l.sd, r#"[x@1 q="a\"b"]"#);
    assert_eq!(l.msg, b"first \xff bytes");
    assert_eq!((lines[3].pri, lines[3].msg_str().as_str()), (11, "second"));
    let d = Counts::since("http_syslog", before);
    assert_eq!((d.records, d.parse_errors, d.rejected), (4, 0, 0));
    lt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_posts_json_events_one_or_many() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let mut lt = start(dir.path(), http_config(), &["api.default", "web.default"]).await;
    let url = format!("http://{}/events", lt.at.http);
    let before = Counts::of("http_events");
    let one = r#"{"severity":3,"facility":16,"hostname":"api.default","tag":"deploy","time":"2024-01-02T03:04:05.123+01:00","message":"released v42"}"#;
    let r = curl(&["-H", "Content-Type: application/json", "-d", one, &url]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "accepted 1\n"), "{r:?}");
    let many = r#"[{"severity":"warning","facility":"local7","hostname":"web.default","tag":"build","message":"step 1\nstep 2"},
                   {"hostname":"web.default","message":"plain"}]"#;
    let r = curl(&["-d", many, &url]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "accepted 2\n"), "{r:?}");
    let lines = lt.records(3).await;
    let l = &lines[0];
    assert_eq!(
        (l.pri, l.hostname.as_str(), l.app_name.as_str()),
        (16 * 8 + 3, "api.default", "deploy")
    );
    assert_eq!(
        (l.timestamp.as_str(), l.msg_str().as_str()),
        ("2024-01-02T02:04:05.123000Z", "released v42")
    );
    assert_eq!(
        (lines[1].pri, lines[1].msg_str().as_str()),
        (23 * 8 + 4, "step 1\\nstep 2")
    );
    assert_eq!((lines[2].pri, lines[2].app_name.as_str()), (14, ""));
    assert_eq!(Counts::since("http_events", before).records, 3);
    lt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_run_without_http_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let mut lt = start(dir.path(), Config::default(), &[]).await;
    let base = format!("http://{}", lt.at.http);
    let r = curl(&[&format!("{base}/healthz")]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let r = curl(&[&format!("{base}/readyz")]).await;
    assert_eq!(r.status, 200);
    let r = curl(&[&format!("{base}/metrics")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        r.body.contains("# TYPE logtrain_input_records_total counter"),
        "{}",
        r.body
    );
    // Inputs that are off do not exist.
    let r = curl(&["-d", "<14>1 - h a - - - x", &format!("{base}/syslog")]).await;
    assert_eq!(r.status, 404);
    let r = curl(&["-X", "POST", &format!("{base}/healthz")]).await;
    assert_eq!((r.status, r.header("allow").as_deref()), (405, Some("GET, HEAD")));
    lt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_problem_and_accept_nothing() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        http_token: Some("s3cret-token".into()),
        http_max_body: 1024,
        ..http_config()
    };
    let mut lt = start(dir.path(), config, &["web.default"]).await;
    let base = format!("http://{}", lt.at.http);
    let syslog = format!("{base}/syslog");
    let events = format!("{base}/events");
    let auth = "Authorization: Bearer s3cret-token";
    let before = Counts::of("http_syslog");

    let r = curl(&["-H", auth, &syslog]).await;
    assert_eq!((r.status, r.header("allow").as_deref()), (405, Some("POST")));
    let r = curl(&["-d", "<14>1 - web.default a - - - x", &syslog]).await;
    assert_eq!(
        (r.status, r.header("www-authenticate").as_deref()),
        (401, Some("Bearer"))
    );
    let r = curl(&[
        "-H",
        "Authorization: Bearer s3cret-tokeN",
        "-d",
        "<14>1 - web.default a - - - x",
        &syslog,
    ])
    .await;
    assert_eq!(r.status, 401);
    assert!(!r.body.contains("s3cret"), "{r:?}");

    // Frame 1 of 3 is not syslog: 400 naming it, and frames 0 and 2 are not kept either.
    let bad = octet(&[
        b"<14>1 - web.default a - - - zero",
        b"not syslog at all",
        b"<14>1 - web.default a - - - two",
    ]);
    let file = dir.path().join("bad.bin");
    std::fs::write(&file, &bad).unwrap();
    let r = curl(&["-H", auth, "--data-binary", &format!("@{}", file.display()), &syslog]).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        r.body,
        "frame 1: not an RFC 5424 or RFC 3164 message; no records of this body were accepted\n"
    );
    // A frame cut short, after a good line.
    let r = curl(&[
        "-H",
        auth,
        "--data-binary",
        "<14>1 - web.default a - - - ok\n90 <14>1 - web",
        &syslog,
    ])
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body
            .starts_with("frame 1: stream ended inside an octet-counted frame"),
        "{r:?}"
    );

    let r = curl(&["-H", auth, "-d", r#"{"hostname": "web.default", "message": }"#, &events]).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.starts_with("invalid JSON: expected value at line 1 column"),
        "{r:?}"
    );
    let r = curl(&[
        "-H",
        auth,
        "-d",
        r#"[{"hostname":"web.default"},{"message":"m"}]"#,
        &events,
    ])
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.starts_with("event 1: hostname is required"), "{r:?}");

    // Over the body limit, announced or streamed.
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![b'x'; 5000]).unwrap();
    let big = format!("@{}", big.display());
    let r = curl(&["-H", auth, "--data-binary", &big, &syslog]).await;
    assert_eq!((r.status, r.body.as_str()), (413, "body larger than 1024 bytes\n"));
    let r = curl(&[
        "-H",
        auth,
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &big,
        &syslog,
    ])
    .await;
    assert_eq!(r.status, 413);

    let r = curl(&[&format!("{base}/nowhere")]).await;
    assert_eq!(r.status, 404);
    let r = curl(&[&format!("{base}/metrics")]).await;
    assert!(!r.body.contains("s3cret"));

    // Nothing was accepted so far; a good request still works.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(support::inputs::read(&lt.out).is_empty());
    let r = curl(&["-H", auth, "-d", "<14>1 - web.default a - - - finally", &syslog]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let lines = lt.records(1).await;
    assert_eq!(lines[0].msg_str(), "finally");
    let d = Counts::since("http_syslog", before);
    assert_eq!((d.records, d.parse_errors), (1, 2));
    lt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_drain_queue_answers_503_with_retry_after() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    // The drain's folder does not exist yet: it cannot deliver, so its queue fills.
    let later = dir.path().join("later");
    let config = Config {
        drain_queue_records: 4,
        // The memory queue alone: what it cannot take is refused or dropped.
        drain_buffer: logtrain::config::BufferMode::Memory,
        ..http_config()
    };
    let mut lt = start_to(&later.join("out.log"), config, &["web.default"]).await;
    let url = format!("http://{}/syslog", lt.at.http);
    let before = Counts::of("http_syslog");
    let mut accepted = 0;
    let busy = loop {
        let r = curl(&["-d", &format!("<14>1 - web.default a - - - msg {accepted}"), &url]).await;
        if r.status != 200 {
            break r;
        }
        accepted += 1;
        assert!(accepted < 100, "the queue never filled");
    };
    assert_eq!(busy.status, 503, "{busy:?}");
    assert_eq!(busy.header("retry-after").as_deref(), Some("1"));
    let d = Counts::since("http_syslog", before);
    // Refused before accepting: nothing the input took was dropped at the queue.
    assert_eq!((d.records, d.rejected, d.dropped), (accepted, 1, 0));

    // Once the drain can deliver, exactly the accepted records arrive, in order.
    std::fs::create_dir(&later).unwrap();
    let lines = lt.records(accepted as usize).await;
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l.msg_str(), format!("msg {i}"));
    }
    let r = curl(&["-d", "<14>1 - web.default a - - - after", &url]).await;
    assert_eq!(r.status, 200);
    lt.records(accepted as usize + 1).await;
    lt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_long_line_or_octet_count_answers_400_and_accepts_nothing() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        syslog_max_line: 1024,
        syslog_max_frame: 4096,
        ..http_config()
    };
    let mut lt = start(dir.path(), config, &["web.default"]).await;
    let url = format!("http://{}/syslog", lt.at.http);
    let before = Counts::of("http_syslog");
    let file = dir.path().join("body.bin");
    let post = |body: Vec<u8>| {
        std::fs::write(&file, body).unwrap();
        let at = format!("@{}", file.display());
        let url = url.clone();
        async move { curl(&["--data-binary", &at, &url]).await }
    };

    // Newline framing: frame 1 of 3 is 2000 bytes long, over SYSLOG_MAX_LINE.
    let long = format!("<14>1 - web.default a - - - {}", "x".repeat(2000));
    let body = format!("<14>1 - web.default a - - - zero\n{long}\n<14>1 - web.default a - - - two\n");
    let r = post(body.into_bytes()).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        r.body,
        "frame 1: line longer than 1024 bytes; no records of this body were accepted\n"
    );

    // Octet counting: frame 2 of 3 declares (and carries) 5000 bytes, over SYSLOG_MAX_FRAME.
    let big = format!("<14>1 - web.default a - - - {}", "y".repeat(5000 - 28));
    assert_eq!(big.len(), 5000);
    let body = octet(&[
        b"<14>1 - web.default a - - - zero",
        b"<14>1 - web.default a - - - one",
        big.as_bytes(),
        b"<14>1 - web.default a - - - three",
    ]);
    let r = post(body).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        r.body,
        "frame 2: octet count 5000 is larger than 4096 bytes; no records of this body were accepted\n"
    );

    // Nothing of either body reached the drain, and each refusal counts once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(support::inputs::read(&lt.out).is_empty());
    let d = Counts::since("http_syslog", before);
    assert_eq!((d.records, d.parse_errors, d.truncated, d.rejected), (0, 2, 0, 0));

    // Frames right at the limits are accepted whole.
    let line = format!("<14>1 - web.default a - - - {}", "l".repeat(1024 - 28));
    let frame = format!("<14>1 - web.default a - - - {}", "f".repeat(4096 - 28));
    let mut body = format!("{line}\n").into_bytes();
    body.extend(octet(&[frame.as_bytes()]));
    let r = post(body).await;
    assert_eq!((r.status, r.body.as_str()), (200, "accepted 2\n"), "{r:?}");
    let lines = lt.records(2).await;
    assert_eq!(lines[0].msg.len(), 1024 - 28);
    assert_eq!(lines[1].msg.len(), 4096 - 28);
    lt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_answers_405_to_other_methods() {
    let dir = tempfile::tempdir().unwrap();
    let mut lt = start(dir.path(), http_config(), &["web.default"]).await;
    let url = format!("http://{}/events", lt.at.http);
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let r = curl(&["-X", method, "-d", r#"{"hostname":"web.default","message":"m"}"#, &url]).await;
        assert_eq!(
            (r.status, r.header("allow").as_deref(), r.body.as_str()),
            (405, Some("POST"), "use POST\n"),
            "{method}"
        );
    }
    let r = curl(&["-I", &url]).await;
    assert_eq!((r.status, r.header("allow").as_deref()), (405, Some("POST")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(support::inputs::read(&lt.out).is_empty());
    lt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_until_every_datasource_has_synced() {
    // A Postgres drain table that cannot be reached never finishes its first
    // listing, so logtrain stays unready while it serves everything else.
    let port = support::free_port();
    let config = Config {
        listen_address: "127.0.0.1".into(),
        http_port: 0,
        postgres: true,
        database_url: Some(format!("postgres://logtrain@127.0.0.1:{port}/logtrain").into()),
        shutdown_timeout: 3,
        ..crate::support::config()
    };
    let app = logtrain::app::App::start(config);
    let at = logtrain::input::start(&app).await.expect("inputs start");
    let base = format!("http://{}", at.http);
    for _ in 0..3 {
        let r = curl(&[&format!("{base}/readyz")]).await;
        assert_eq!((r.status, r.body.as_str()), (503, "not ready\n"));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(!app.is_ready());
    let r = curl(&[&format!("{base}/healthz")]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let r = curl(&[&format!("{base}/metrics")]).await;
    assert_eq!(r.status, 200);
    let report = app.shutdown().await;
    assert!(report.unflushed.is_empty(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrouted_http_records_are_accepted_and_counted_not_forwarded() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let mut lt = start(dir.path(), http_config(), &["web.default"]).await;
    let base = format!("http://{}", lt.at.http);
    let syslog_before = Counts::of("http_syslog");
    let events_before = Counts::of("http_events");

    let body =
        "<14>1 - nobody.default a - - - lost\n<14>1 - web.default a - - - kept\n<14>1 - other.ns a - - - lost too\n";
    let r = curl(&["--data-binary", body, &format!("{base}/syslog")]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "accepted 3\n"), "{r:?}");
    let events =
        r#"[{"hostname":"nobody.default","message":"lost"},{"hostname":"web.default","message":"kept event"}]"#;
    let r = curl(&["-d", events, &format!("{base}/events")]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "accepted 2\n"), "{r:?}");

    let lines = lt.records(2).await;
    let msgs: Vec<String> = lines.iter().map(|l| l.msg_str()).collect();
    assert_eq!(msgs, ["kept", "kept event"]);
    let d = Counts::since("http_syslog", syslog_before);
    assert_eq!((d.records, d.unrouted, d.parse_errors), (3, 2, 0));
    let d = Counts::since("http_events", events_before);
    assert_eq!((d.records, d.unrouted, d.parse_errors), (2, 1, 0));
    let r = curl(&[&format!("{base}/metrics")]).await;
    let series = |input: &str| {
        let prefix = format!("logtrain_unrouted_records_total{{input=\"{input}\"}} ");
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(|v| v.parse::<u64>().unwrap()))
            .unwrap_or_else(|| panic!("no {prefix} series in /metrics"))
    };
    assert!(series("http_syslog") >= 2 && series("http_events") >= 1);
    lt.stop().await;
}
