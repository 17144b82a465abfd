//! Compiles `taxi/**/*.proto` with protox (pure Rust, so no `protoc` is needed)
//! and keeps the file descriptor set for gRPC reflection.

use std::{env, path::PathBuf};

use prost::Message as _;

const PROTOS: &[&str] = &[
    "taxi/common/v1/common.proto",
    "taxi/call/v1/call.proto",
    "taxi/dispatch/v1/dispatch.proto",
    "taxi/payment/v1/payment.proto",
    "taxi/events/v1/events.proto",
    "taxi/query/v1/query.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["."])?;
    std::fs::write(out.join("taxi_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=taxi");
    Ok(())
}
