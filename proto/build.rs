//! Compiles `proto/**/*.proto` to Rust with protox (pure Rust, no `protoc`)
//! and prost-build.

use std::error::Error;

/// Proto files to compile, relative to [`INCLUDE_DIR`].
const PROTOS: &[&str] = &["hearth/v1/events.proto"];
/// Root of the proto import path, relative to the crate directory.
const INCLUDE_DIR: &str = "proto";

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={INCLUDE_DIR}");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={INCLUDE_DIR}/{proto}");
    }

    let fds = protox::compile(PROTOS, [INCLUDE_DIR])?;
    prost_build::Config::new()
        // Every `bytes` field becomes `bytes::Bytes` (cheap clones, zero-copy slices).
        .bytes(["."])
        .compile_fds(fds)?;
    Ok(())
}
