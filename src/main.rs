//! `drover`: the command line (see `drover --help` and the README).

fn main() -> anyhow::Result<()> {
    drover::App::new().run()
}
