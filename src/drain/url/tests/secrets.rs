//! Tests that a drain URL's secrets never show: ids, masking, errors and
//! `Debug` of URLs whose passwords hold every delimiter, parsed or not.

use super::*;

#[test]
fn errors_name_the_part_and_mask_passwords() {
    let e = bad("ftp://user:hunter2@h/");
    assert!(e.problem.contains("unknown scheme \"ftp\""));
    assert!(e.valid.contains("syslog+tls://"));
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert_eq!(e.url, "ftp://h");

    let e = bad("not a url at all");
    assert!(e.problem.contains("not a URL"));
    let e = bad("syslog+tcp://u:pw@h:1");
    assert!(e.problem.contains("credentials"));
    assert!(!e.to_string().contains("pw@"));
    assert!(bad("syslog+tcp://h:99999").problem.contains("not a URL"));
    assert!(bad("syslog+tcp://h:0").problem.contains("port 0"));
    let e = bad("syslog+tcp://h:1/Rec3iverT0ken");
    assert_eq!(e.problem, "unexpected path");
    assert!(!e.to_string().contains("Rec3iverT0ken"), "{e}");
    assert!(bad("syslog+tcp://:1").problem.contains("host") || bad("syslog+tcp://:1").problem.contains("URL"));
    assert!(bad("https://h/?auth=bearer").problem.contains("needs credentials"));
    assert!(
        bad("https://u:p@h/?auth=digest")
            .valid
            .contains("basic, bearer or apikey")
    );
    assert!(bad("es://h?index=").problem.contains("index"));
    assert!(bad("es://h?foo=1").valid.contains("accepts auth, index"));
}

#[test]
fn masking_shows_at_most_scheme_host_and_port_even_of_urls_that_do_not_parse() {
    for (raw, shown) in [
        ("es://u:p@ss@h:1/x", "es://h:1"),
        ("https://token@h", "https://h"),
        ("syslog+tcp://h:1", "syslog+tcp://h:1"),
        (
            "HTTPS://User:Pw@Logs.Example.com:8443/a/b?c=d#e",
            "https://logs.example.com:8443",
        ),
        ("https://u:p@[::1]:99999/x", "https://[::1]:99999"),
        ("gopher://user:pw@example.com", "gopher://example.com"),
        // No host that can be told apart from the password: the scheme only.
        ("https://user:pw@", "https://"),
        ("http://u:pw@[", "http://"),
        ("https://u:pa/ss@h/x", "https://"),
        ("https://u:12#ss@h/x", "https://"),
        ("https://u:p?ss@h", "https://"),
        ("https://h/a@b", "https://"),
        ("https://user:pa ss@h", "https://h"),
        ("https://user:pa ss@h ost", "https://"),
        // Not even a scheme.
        ("garbage", "<unparseable>"),
        ("user:pw@host", "<unparseable>"),
        ("ht tp://u:p@h", "<unparseable>"),
        ("", "<unparseable>"),
    ] {
        assert_eq!(mask_credentials(raw), shown, "{raw}");
    }
}

#[test]
fn a_drain_id_is_scheme_host_port_and_a_digest_of_the_whole_url() {
    let a = ok("https://user:pw@logs.example.com/receiver/v1/http/Rec3iverT0ken");
    assert_eq!(named(&a.id), "https://logs.example.com:443");
    assert_eq!(a.to_string(), a.id);
    // Another path, query, password or user: another id, none of them shown.
    let others = [
        "https://user:pw@logs.example.com/receiver/v1/http/0therT0ken",
        "https://user:pw2@logs.example.com/receiver/v1/http/Rec3iverT0ken",
        "https://logs.example.com/receiver/v1/http/Rec3iverT0ken",
        "https://logs.example.com/inputs/Rec3iverT0ken?dd-api-key=ApiKey0",
        "https://logs.example.com/inputs/Rec3iverT0ken?dd-api-key=ApiKey1",
    ];
    let mut ids = vec![a.id.clone()];
    for u in others {
        let s = ok(u);
        assert_eq!(named(&s.id), "https://logs.example.com:443", "{u}");
        for secret in ["pw", "Rec3iverT0ken", "0therT0ken", "ApiKey", "inputs", "receiver"] {
            assert!(!s.id.contains(secret), "{u}: {}", s.id);
            assert!(!format!("{s:?}").contains(secret), "{u}: {s:?}");
        }
        ids.push(s.id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), others.len() + 1, "{ids:?}");
    // The same URL, however it is spelled, is the same drain.
    assert_eq!(
        ok("HTTPS://Logs.Example.com:443/x").id,
        ok("https://logs.example.com/x").id
    );
    assert_eq!(named(&ok("es://h").id), "es://h:443");
    assert_ne!(ok("es://h").id, ok("elasticsearch://h").id);
}

#[test]
fn tagged_and_tenant_copies_are_named_apart_and_keep_the_tag_readable() {
    let s = ok("syslog+tls://logs.example.com");
    let tagged = s.tagged("shop");
    let (id, tag) = tagged.id.split_once(' ').unwrap();
    assert_eq!(tag, "tag=shop");
    assert_eq!(named(id), "syslog+tls://logs.example.com:6514");
    assert_ne!(id, s.id, "a tagged drain is a drain of its own");
    assert_ne!(s.tagged("cart").id, tagged.id);
    let egress = std::sync::Arc::new(crate::egress::Egress::new(Vec::new()));
    let tenant = s.restricted(egress.clone());
    assert_eq!(named(&tenant.id), "syslog+tls://logs.example.com:6514");
    assert_ne!(tenant.id, s.id);
    let both = s.tagged("shop").restricted(egress);
    assert!(both.id.ends_with(" tag=shop"), "{}", both.id);
    let all = [&s.id, &tagged.id, &tenant.id, &both.id];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn local_drains_keep_their_path_as_their_id() {
    assert_eq!(ok("file:///var/tmp/web.log").id, "file:///var/tmp/web.log");
    assert_eq!(
        ok("file:///var/tmp/web.log").tagged("x").id,
        "file:///var/tmp/web.log tag=x"
    );
    assert_eq!(ok("stdout://").id, "stdout://");
    assert_eq!(ok("file:///var/log/app@1.log").id, "file:///var/log/app@1.log");
}

#[test]
fn passwords_with_delimiters_never_show_in_ids_or_errors() {
    let hosts = [
        "logs.example.com",
        "logs.example.com:8443",
        "10.0.0.1:514",
        "[::1]:6514",
    ];
    let schemes = ["https", "syslog+https", "es", "syslog+tls", "gopher"];
    for c in ["/", "?", "#", ";", ",", "@", ":", " ", "%", "/#?@"] {
        for host in hosts {
            for scheme in schemes {
                for tail in [
                    "",
                    "/",
                    "/receiver/v1/http/Rec3iverT0ken",
                    "/inputs/Rec3iverT0ken?dd-api-key=ApiK3y",
                ] {
                    let raw = format!("{scheme}://us3r:Pa{c}ssw0rd@{host}{tail}");
                    let shown = match DrainSpec::parse(&raw) {
                        Ok(s) => format!("{} {s} {s:?}", s.id),
                        Err(e) => format!("{e} {e:?}"),
                    };
                    for secret in ["us3r", "Pa", "ssw0rd", "Rec3iverT0ken", "ApiK3y", "inputs", "receiver"] {
                        assert!(!shown.contains(secret), "{raw} shows {secret:?}: {shown}");
                    }
                }
            }
        }
    }
}

#[test]
fn an_at_sign_after_the_host_is_refused_as_ambiguous() {
    for raw in [
        "https://user:pa/ss@h/x",
        "https://user:12/ss@h/x",
        "https://user:12#ss@h",
        "https://u:p@ss/w@rd@h",
        "https://h/users/a@b",
    ] {
        let e = bad(raw);
        assert!(e.problem.contains("'@' after the host"), "{raw}: {e}");
        assert!(e.valid.contains("%40"), "{raw}: {e}");
        assert_eq!(e.url, "https://", "{raw}");
    }
    // Encoded, they parse, and the password is the password.
    let s = ok("https://user:pa%2Fss@h/users/a%40b");
    assert_eq!(s.host, "h");
    assert_eq!(
        http(&s).auth,
        Auth::Basic {
            user: "user".into(),
            password: "pa/ss".into()
        }
    );
}

#[test]
fn errors_quote_only_plain_names_and_values() {
    let e = bad("syslog+tls://h?Rec3iverT0ken");
    assert_eq!(e.problem, "unknown parameter (name not shown)");
    assert_eq!(bad("syslog+tls://h?mode=1").problem, "unknown parameter \"mode\"");
    let e = bad("https://u:p@h/?auth=Bearer%20Rec3iverT0ken");
    assert_eq!(e.problem, "parameter auth=(value not shown)");
    assert_eq!(bad("https://u:p@h/?auth=digest").problem, "parameter auth=\"digest\"");
    let e = bad("https://h/?auth=Rec3iverT0ken");
    assert_eq!(e.problem, "auth=(value not shown) needs credentials in the URL");
    assert_eq!(
        bad("https://h/?auth=bearer").problem,
        "auth=\"bearer\" needs credentials in the URL"
    );
    let e = bad("syslog+udp://h?max_size=abc123def");
    assert_eq!(e.problem, "parameter max_size=(value not shown)");
}

#[test]
fn debug_never_shows_secrets() {
    let s = ok("https://user:topsecret@h/?auth=basic");
    assert!(!format!("{s:?}").contains("topsecret"));
    assert!(!format!("{s}").contains("topsecret"));
}

proptest::proptest! {
    /// Whatever a password holds, a URL is shown as its scheme and host (and
    /// port) or its scheme alone, and a drain made of it connects to that host.
    #[test]
    fn a_password_never_shows_and_never_moves_the_host(
        password in "[a-zA-Z0-9/?#;,@: %]{0,12}",
        host in proptest::sample::select(vec!["h", "h:8443", "10.0.0.1:514", "[::1]:6514"]),
        tail in proptest::sample::select(vec!["", "/", "/receiver/v1/http/T0kn", "/inputs/T0kn?dd-api-key=K3yy"]),
    ) {
        let raw = format!("https://Us3rX:Pw{password}Zq9@{host}{tail}");
        let with_port = if host.contains(':') && !host.ends_with(']') { host.to_string() } else { format!("{host}:443") };
        let shown = match DrainSpec::parse(&raw) {
            Ok(s) => {
                proptest::prop_assert_eq!(named(&s.id), format!("https://{with_port}"));
                format!("{} {s} {s:?}", s.id)
            }
            Err(e) => {
                proptest::prop_assert!(e.url == "https://" || e.url == format!("https://{host}"), "{}: {}", raw, e);
                format!("{e} {e:?}")
            }
        };
        for secret in ["Us3rX", "Zq9", "T0kn", "K3yy", "inputs", "receiver"] {
            proptest::prop_assert!(!shown.contains(secret), "{} shows {}: {}", raw, secret, shown);
        }
    }
}
