//! sc-client (being written).

fn main() {}
