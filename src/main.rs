//! kbuild: parse the command line, run the command, map errors to exit codes.

mod artifact;
mod attest;
mod build;
mod cache;
mod checks;
mod clean;
mod cli;
mod commands;
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
mod outdir;
mod outputs;
mod package;
mod plan;
mod progress;
mod recipe;
mod redact;
mod registry;
mod show;
mod signals;
mod smoke;
mod source;
mod suggest;
mod ui;
mod units;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::Result;
use crate::signals::Interrupt;
use crate::ui::Ui;

fn main() {
    ui::quiet_on_closed_stdout();
    attest::mark_run_started();
    let cli = Cli::parse();
    let ui = Ui::new(cli.global.json, cli.global.quiet, cli.global.verbose)
        .with_progress_interval(cli.global.progress_interval);
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

/// The `--context` of a command that talks to the engine, and whether it needs the engine
/// (the doctor reports a bad choice as its engine check instead).
fn context_flag(command: &Command) -> (Option<String>, bool) {
    let docker =
        |e: &cli::EngineArgs| (e.context.name.clone(), e.engine == cli::EngineKind::Docker);
    match command {
        Command::Build(a) => docker(&a.engine),
        Command::QuickRelease(a) => docker(&a.engine),
        Command::Extension(a) => docker(&a.engine),
        Command::Doctor(a) => (a.context.name.clone(), false),
        Command::Clean(a) => (a.context.name.clone(), true),
        _ => (None, false),
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

/// `--no-wait` / `--lock-timeout` of a command that locks its output directory. Set only when
/// given, and the first setting wins: `kbuild run --no-wait R` and `kbuild run R -- --no-wait`
/// both reach the recipe's command.
fn lock_policy(args: &cli::LockArgs) {
    match (args.no_wait, args.lock_timeout) {
        (true, _) => lock::set_policy(lock::Wait::No),
        (false, Some(secs)) => {
            lock::set_policy(lock::Wait::For(std::time::Duration::from_secs(secs)))
        }
        (false, None) => {}
    }
}

async fn run(command: Command, ui: &Ui, interrupt: &Interrupt) -> Result<()> {
    // A recipe's own command makes the choice, with its --context.
    if !matches!(command, Command::Run(_)) {
        let (flag, needs_engine) = context_flag(&command);
        engine::endpoint::choose(flag, engine::endpoint::EnvSnapshot::capture());
        // A context that does not exist is bad input: refused before anything is made.
        if needs_engine {
            engine::endpoint::current()?;
        }
    }
    match command {
        Command::Build(args) => {
            lock_policy(&args.lock);
            plan::check_out_dir(&args.out)?;
            let plan = plan::resolve_build(&args)?;
            build::run(&plan, ui, interrupt).await
        }
        Command::Source(args) => {
            lock_policy(&args.lock);
            // The checkout is shared with --ref builds: take turns (lock.rs).
            let dir = match &args.dir {
                Some(dir) => dir.clone(),
                None => source::checkout::default_dir(&args.repo)?,
            };
            let _lock = lock::acquire_tree(&dir, ui, interrupt).await?;
            commands::source(&args, ui)
        }
        Command::Doctor(args) => {
            if let Some(image) = args.image.as_deref().filter(|i| !i.is_empty()) {
                engine::docker::check_reference(image)?;
            }
            doctor::run(&args, ui).await
        }
        Command::QuickRelease(args) => {
            lock_policy(&args.lock);
            plan::check_out_dir(&args.out)?;
            commands::quick_release(&args, ui, interrupt).await
        }
        Command::Extension(args) => {
            lock_policy(&args.lock);
            plan::check_out_dir(&args.out)?;
            commands::extension(&args, ui, interrupt).await
        }
        Command::Package(args) => {
            lock_policy(&args.lock);
            plan::check_out_dir(&args.out)?;
            commands::package(&args, ui, interrupt).await
        }
        Command::Verify(args) => {
            plan::check_verify_dir(&args.dir)?;
            commands::verify(&args, ui, interrupt).await
        }
        Command::Sign(args) => commands::sign(&args, ui),
        Command::Smoke(args) => smoke::run(&args, ui).await,
        Command::Run(args) => {
            lock_policy(&args.lock);
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
                let shown = redact::text(&argv[1..].join(" "));
                let line = format!("{}: ok ({shown})\n", file.display());
                ui::write_stdout(line.as_bytes())?;
            }
            Ok(())
        }
        Command::Clean(args) => {
            let tree = args
                .all
                .then(|| source::check_tree(&args.kube_root))
                .transpose()?;
            let kube_root = args.kube_root.is_dir().then_some(args.kube_root.as_path());
            let plan = clean::CleanPlan {
                out: &args.out,
                kube_root,
                caches: args.caches || args.all,
                tree: tree.as_deref(),
            };
            clean::run(&plan, ui).await
        }
        Command::Completions { shell } => {
            // Generated into memory first: clap_complete panics on a failed write.
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "kbuild", &mut script);
            ui::write_stdout(&script)
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(|e| error::Error::internal(format!("cannot render the man page: {e}")))?;
            ui::write_stdout(&page)
        }
    }
}
