//! `gatehouse-identity`: see the `identity` library crate.

fn main() -> std::process::ExitCode {
    identity::main()
}
