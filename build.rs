//! Compiles Envoy's access-log service protos (`proto/`) into Rust at build
//! time with `protox`, a pure-Rust protobuf compiler, so no system `protoc` is
//! needed. Only server code is generated; option-only packages (validation
//! rules, versioning annotations) are left out because nothing reads them.

use std::io;

/// Packages that only declare custom options; their messages never appear in a field.
const OPTION_ONLY: &[&str] = &[
    "validate",
    "udpa.annotations",
    "xds.annotations.v3",
    "envoy.annotations",
];

fn main() -> io::Result<()> {
    println!("cargo:rerun-if-changed=proto");
    let mut fds = protox::compile(["envoy/service/accesslog/v3/als.proto"], ["proto"])
        .map_err(|e| io::Error::other(format!("compiling proto/: {e}")))?;
    fds.file.retain(|f| !OPTION_ONLY.contains(&f.package()));
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .build_transport(false)
        .include_file("envoy_als.rs")
        .compile_fds(fds)
}
