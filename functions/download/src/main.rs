//! The `download` function as its own service (Knative or AWS Lambda).
fn main() -> std::process::ExitCode {
    shared::function::main(shared::download::router)
}
