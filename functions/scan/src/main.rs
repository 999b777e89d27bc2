//! The `scan` function as its own service: the scanning API, and `POST /` for the
//! `uploaded`/`rescan` CloudEvents the broker delivers.
fn main() -> std::process::ExitCode {
    shared::function::main(shared::scan::service::function)
}
