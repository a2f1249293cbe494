//! sc-server (being written).

fn main() {}
