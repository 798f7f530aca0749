//! Compiles `fleet/v1/*.proto` with protox (pure Rust, no `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["fleet/v1/spoke.proto", "fleet/v1/admin.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        .bytes(".")
        .codec_path("crate::codec::FleetCodec")
        .compile_fds(fds)?;
    Ok(())
}
