//! Generates the peer service (crates/store/proto/peer.proto): berth's own, for raft and
//! forwarding between members (ADR 0702).

fn main() {
    println!("cargo:rerun-if-changed=proto/peer.proto");
    tonic_prost_build::configure()
        .compile_protos(&["proto/peer.proto"], &["proto"])
        .expect("cannot compile proto/peer.proto (protoc from Debian's protobuf-compiler)");
}
