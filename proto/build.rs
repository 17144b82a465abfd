//! Compiles `taxi/**/*.proto` with protox (pure Rust, so no `protoc` is needed)
//! and keeps the file descriptor set for gRPC reflection.
//!
//! The code is generated in two passes. The first writes the messages and the
//! clients, which decode answers with `tonic_prost::ProstCodec`: an answer that
//! does not decode is the peer's fault, so INTERNAL is right there. The second
//! writes only the servers (every `.taxi` type is taken from the first pass),
//! which decode requests with [`crate::codec::RequestCodec`], so that a request
//! that does not decode is the caller's fault: INVALID_ARGUMENT.

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

    // `prost::Name` lets the request codec name the message it could not decode.
    let mut messages = tonic_prost_build::Config::new();
    messages.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds_with_config(fds.clone(), messages)?;

    let servers = out.join("server");
    std::fs::create_dir_all(&servers)?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .extern_path(".taxi", "crate")
        .codec_path("crate::codec::RequestCodec")
        .out_dir(&servers)
        .compile_fds(fds)?;

    println!("cargo:rerun-if-changed=taxi");
    Ok(())
}
