fn main() {
    std::process::exit(polyaxon_cli::main());
}
