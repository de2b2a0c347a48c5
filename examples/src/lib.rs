//! Programs that embed FrameDB live in this package's examples; run `cargo run -p framedb-examples --example embed`.
