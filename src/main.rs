//! kbuild: parse the command line, run the command, map errors to exit codes.

mod build;
mod cache;
mod clean;
mod cli;
mod engine;
mod error;
mod fingerprint;
mod joblog;
mod kube;
mod outputs;
mod plan;
mod signals;
mod source;
mod suggest;
mod ui;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::Result;
use crate::signals::Interrupt;
use crate::ui::Ui;

fn main() {
    let cli = Cli::parse();
    let ui = Ui::new(cli.global.json, cli.global.quiet, cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async {
        let interrupt = Interrupt::install();
        run(cli.command, &ui, &interrupt).await
    });
    // Drop the runtime before exiting so that nothing is left running in the background.
    drop(runtime);
    if let Err(err) = result {
        ui.error(&err);
        std::process::exit(err.exit_code());
    }
}

async fn run(command: Command, ui: &Ui, interrupt: &Interrupt) -> Result<()> {
    match command {
        Command::Build(args) => {
            let plan = plan::resolve_build(&args)?;
            build::run(&plan, ui, interrupt).await
        }
        Command::Clean(args) => {
            let tree = args.all.then(|| source::check_tree(&args.kube_root)).transpose()?;
            let plan = clean::CleanPlan {
                out: &args.out,
                caches: args.caches || args.all,
                tree: tree.as_deref(),
            };
            clean::run(&plan, ui).await
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "kbuild", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command)
                .render(&mut std::io::stdout())
                .map_err(|e| error::Error::internal(format!("cannot write the man page: {e}")))
        }
    }
}
