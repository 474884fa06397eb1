fn main() -> std::process::ExitCode {
    tixngo_feedback::run(std::env::args_os()).into()
}
