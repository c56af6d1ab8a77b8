//! kbuild: parse the command line, run the command, map errors to exit codes.

mod build;
mod cache;
mod checks;
mod clean;
mod cli;
mod doctor;
mod engine;
mod error;
mod extension_image;
mod extract;
mod fingerprint;
mod imageref;
mod input;
mod joblog;
mod kube;
mod lock;
mod outputs;
mod package;
mod plan;
mod progress;
mod recipe;
mod registry;
mod release;
mod show;
mod signals;
mod smoke;
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
    let ui = Ui::new(cli.global.json, cli.global.quiet, cli.global.verbose)
        .with_progress_interval(std::time::Duration::from_secs(cli.global.progress_interval));
    lock::set_policy(match (cli.global.no_wait, cli.global.lock_timeout) {
        (true, _) => lock::Wait::No,
        (false, Some(secs)) => lock::Wait::For(std::time::Duration::from_secs(secs)),
        (false, None) => lock::Wait::Forever,
    });
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

/// A recipe whose values the command line parser refuses (e.g. components for a command
/// that takes none).
fn recipe_flags_error(path: &std::path::Path, e: clap::Error) -> error::Error {
    let text = e.to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ");
    error::Error::usage(format!("{}: {first}", path.display())).with_hint(
        "check the recipe against the schema in the README, or run `kbuild recipe check`",
    )
}

async fn run(command: Command, ui: &Ui, interrupt: &Interrupt) -> Result<()> {
    match command {
        Command::Build(args) => {
            let plan = plan::resolve_build(&args)?;
            build::run(&plan, ui, interrupt).await
        }
        Command::Source(args) => doctor::source(&args, ui),
        Command::Doctor(args) => doctor::run(&args, ui).await,
        Command::QuickRelease(args) => release::quick_release(&args, ui, interrupt).await,
        Command::Extension(args) => release::extension(&args, ui, interrupt).await,
        Command::Smoke(args) => smoke::run(&args, ui).await,
        Command::Package(args) => release::package(&args, ui, interrupt).await,
        Command::Verify(args) => release::verify(&args, ui, interrupt).await,
        Command::Run(args) => {
            let loaded = recipe::load(&args.recipe)?;
            let argv = loaded.recipe.to_args(&args.overrides);
            ui.phase(
                "recipe",
                &format!("{}: {}", loaded.path.display(), argv[1..].join(" ")),
            );
            let parsed =
                Cli::try_parse_from(&argv).map_err(|e| recipe_flags_error(&loaded.path, e))?;
            Box::pin(run(parsed.command, ui, interrupt)).await
        }
        Command::Plan(args) => {
            let loaded = recipe::load(&args.recipe)?;
            let argv = loaded.recipe.to_args(&args.overrides);
            let parsed =
                Cli::try_parse_from(&argv).map_err(|e| recipe_flags_error(&loaded.path, e))?;
            show::plan(&loaded.path, &argv, &parsed.command)
        }
        Command::Recipe(cli::RecipeCommand::Check { files }) => {
            for file in &files {
                let loaded = recipe::load(file)?;
                let argv = loaded.recipe.to_args(&[]);
                Cli::try_parse_from(&argv).map_err(|e| recipe_flags_error(file, e))?;
                println!("{}: ok ({})", file.display(), argv[1..].join(" "));
            }
            Ok(())
        }
        Command::Clean(args) => {
            let tree = args
                .all
                .then(|| source::check_tree(&args.kube_root))
                .transpose()?;
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
