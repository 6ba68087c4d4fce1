//! The fuzz targets of `fuzz/` run on stable Rust: every parser gets random
//! bytes and random mutations of the seed inputs in `fuzz/seeds/`, and must
//! neither panic nor break its bounds (see `fuzz/targets.rs`). `fuzz/run` runs
//! the same targets under libFuzzer with coverage guidance and an RSS limit.
//! `LOGTRAIN_FUZZ_CASES` sets the cases per target (default 2000).

#[path = "../../fuzz/targets.rs"]
mod targets;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds for {target}");
    out
}

#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Duplicate(usize, usize),
}

fn mutate(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = b.len();
        match e {
            Edit::Flip(i, x) if n > 0 => b[i % n] ^= x,
            Edit::Insert(i, bytes) => {
                let at = i % (n + 1);
                b.splice(at..at, bytes.iter().copied());
            }
            Edit::Remove(i, len) if n > 0 => {
                let at = i % n;
                b.drain(at..(at + len).min(n));
            }
            Edit::Duplicate(i, len) if n > 0 => {
                let at = i % n;
                let piece = b[at..(at + len).min(n)].to_vec();
                b.splice(at..at, piece);
            }
            _ => {}
        }
    }
    b
}

fn edit() -> impl Strategy<Value = Edit> {
    let special = prop_oneof![
        Just(b" ".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"999999999999999999999 ".to_vec()),
        Just(b"[".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\\".to_vec()),
        Just(vec![0xff, 0xfe]),
        Just(b"%".to_vec()),
        Just(b"@".to_vec()),
        Just(b"{".to_vec()),
    ];
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Edit::Flip(i, x)),
        (
            any::<usize>(),
            prop_oneof![special, proptest::collection::vec(any::<u8>(), 1..8)]
        )
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Edit::Remove(i, n)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
}

#[test]
fn every_parser_survives_random_and_mutated_input() {
    let cases: u32 = std::env::var("LOGTRAIN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    for (name, target) in targets::ALL {
        let seeds = seeds(name);
        let input = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            (0..seeds.len(), proptest::collection::vec(edit(), 0..6))
                .prop_map(move |(i, e)| mutate(seeds[i].clone(), &e)),
        ];
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&input, |data| {
            target(&data);
            Ok(())
        }) {
            panic!("{name}: {e}");
        }
    }
}
