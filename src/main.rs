//! kbuild: parse the command line, run the command, map errors to exit codes.

mod artifact;
mod attest;
mod checks;
mod cli;
mod commands;
mod engine;
mod env;
mod error;
mod exec;
mod imageref;
mod input;
mod kube;
mod outdir;
mod package;
mod plan;
mod redact;
mod resolve;
mod signals;
mod source;
mod suggest;
mod ui;
mod units;

use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command};
use crate::commands::{Invocation, Mode};
use crate::error::Result;
use crate::outdir::lock;
use crate::plan::CommandKind;
use crate::resolve::options::{self, Flags, Options};
use crate::resolve::recipe;
use crate::signals::Interrupt;
use crate::ui::Ui;

fn main() {
    attest::mark_run_started();
    // Read once, before anything else: everything below reads this snapshot.
    let env = env::current();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let global = inner_globals(&cli.command).over(&cli.global);
    // `kbuild plan --json` prints the plan as the one JSON document on stdout: its notes
    // and warnings go to stderr as lines.
    let planning = matches!(cli.command, Command::Plan(_));
    let ui = Ui::new(global.json && !planning, global.quiet, global.verbose)
        .with_progress_interval(cli.global.progress_interval);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ui::emit(
                ui::Stream::Err,
                &format!("error: cannot start the async runtime: {e}"),
            );
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async {
        let interrupt = Interrupt::install();
        let sub = matches.subcommand().map(|(_, m)| m);
        run(cli.command, sub, env, global.json, &ui, &interrupt).await
    });
    // Drop the runtime before exiting so that nothing is left running in the background.
    drop(runtime);
    // A run whose stderr lost its reader never ends as a success, and the stop it caused
    // is reported as such; a failure of the run's own keeps its code.
    let result = match result {
        Ok(()) if signals::output_was_closed() => Err(signals::output_closed_error()),
        Err(e) if signals::output_was_closed() && e.kind.is_stop() => {
            Err(signals::output_closed_error())
        }
        result => result,
    };
    if let Err(err) = result {
        // A plan's failure is its JSON document: the summary every `--json` run ends with.
        match planning && global.json {
            true => Ui::new(true, global.quiet, global.verbose).error(&err),
            false => ui.error(&err),
        }
        std::process::exit(err.exit_code());
    }
}

/// The global flags of a run: set on kbuild's own command line or on the command line a
/// plan or a recipe is given (`kbuild plan R --json`, `kbuild run R -- -q`).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Globals {
    json: bool,
    quiet: bool,
    verbose: bool,
}

impl Globals {
    fn over(self, outer: &cli::GlobalArgs) -> Globals {
        Globals {
            json: self.json || outer.json,
            quiet: self.quiet || outer.quiet,
            verbose: self.verbose || outer.verbose,
        }
    }
}

/// The global flags among the words `kbuild plan` and `kbuild run` pass on to the command
/// they plan or run, which clap takes as plain values there. Read before the output mode is
/// chosen, because a plan's or a recipe's command line is parsed only later; that parse
/// refuses what is not a flag of the command, so these words are flags wherever they stand,
/// up to a `--` that ends the flags.
fn inner_globals(command: &Command) -> Globals {
    let words: &[String] = match command {
        Command::Plan(a) if kind_named(&a.what[0]).is_some() => &a.what[1..],
        // A recipe, then its flags, after an optional `--`.
        Command::Plan(a) => match a.what.get(1).map(String::as_str) {
            Some("--") => &a.what[2..],
            _ => &a.what[1..],
        },
        Command::Run(a) => &a.overrides,
        _ => &[],
    };
    let mut found = Globals::default();
    for word in words.iter().take_while(|w| *w != "--") {
        match word.as_str() {
            "--json" => found.json = true,
            "--quiet" => found.quiet = true,
            "--verbose" => found.verbose = true,
            // Short flags, alone or together (-q, -v, -qv): the only short flags kbuild has.
            short
                if short.len() > 1
                    && short.starts_with('-')
                    && short[1..].bytes().all(|b| b == b'q' || b == b'v') =>
            {
                found.quiet |= short.contains('q');
                found.verbose |= short.contains('v');
            }
            _ => {}
        }
    }
    found
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
        Command::Cache(cli::CacheCommand::Export(a)) => (a.image.context.name.clone(), true),
        Command::Cache(cli::CacheCommand::Import(a)) => (a.image.context.name.clone(), true),
        _ => (None, false),
    }
}

/// clap's refusal of a command line kbuild parses itself (a plan's command, a recipe's
/// flags after `--`), in kbuild's words: `what`, clap's first line, then every line clap
/// says under it (the missing arguments, the valid values, the `-- -1` tip) as details.
/// Only clap's usage line and its pointer to `--help` go: the hint says where help is.
fn clap_refusal(what: &str, e: &clap::Error, hint: &str) -> error::Error {
    let text = e.to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").trim_start_matches("error: ");
    let mut details = Vec::new();
    let mut in_usage = false;
    for line in lines {
        // The usage runs from `Usage:` to the next empty line.
        in_usage = line.starts_with("Usage:") || (in_usage && !line.trim().is_empty());
        if in_usage || line.trim().is_empty() || line.starts_with("For more information") {
            continue;
        }
        details.push(line.strip_prefix("  ").unwrap_or(line).to_string());
    }
    error::Error::usage(format!("{what}: {first}"))
        .with_details(details)
        .with_hint(hint)
}

/// Flags after a recipe's `--` that the command line parser refuses.
fn override_flags_error(path: &std::path::Path, e: clap::Error) -> error::Error {
    clap_refusal(
        &format!("{} -- flags", path.display()),
        &e,
        "flags after `--` are the recipe command's own flags; see `kbuild <command> --help`",
    )
}

/// The building, packaging and checking commands, which run from one resolved plan.
fn planned_kind(command: &Command) -> Option<CommandKind> {
    Some(match command {
        Command::Build(_) => CommandKind::Build,
        Command::QuickRelease(_) => CommandKind::QuickRelease,
        Command::Extension(_) => CommandKind::Extension,
        Command::Package(_) => CommandKind::Package,
        Command::Doctor(_) => CommandKind::Doctor,
        _ => return None,
    })
}

fn kind_named(name: &str) -> Option<CommandKind> {
    Some(match name {
        "build" => CommandKind::Build,
        "quick-release" => CommandKind::QuickRelease,
        "extension" => CommandKind::Extension,
        "package" => CommandKind::Package,
        "doctor" => CommandKind::Doctor,
        _ => return None,
    })
}

/// The settings a parsed command line gave, with clap's record of which the user typed.
fn flag_options(command: &Command, matches: &ArgMatches) -> Options {
    let flags = Flags::new(matches);
    match command {
        Command::Build(a) => flags.build(a),
        Command::QuickRelease(a) => flags.quick_release(a),
        Command::Extension(a) => flags.extension(a),
        Command::Package(a) => flags.package(a),
        Command::Doctor(a) => flags.doctor(a),
        _ => Options::default(),
    }
}

fn lock_of(command: &Command) -> cli::LockArgs {
    match command {
        Command::Build(a) => a.lock.clone(),
        Command::QuickRelease(a) => a.lock.clone(),
        Command::Extension(a) => a.lock.clone(),
        Command::Package(a) => a.lock.clone(),
        _ => cli::LockArgs::default(),
    }
}

/// A command resolved from its overlay (flags over the environment over a recipe), with
/// its inputs for the plan.
fn resolved(
    kind: CommandKind,
    overlay: Options,
    lock: cli::LockArgs,
    mode: Mode,
) -> Result<(Command, Invocation)> {
    let inputs = overlay.inputs();
    let command = resolve::args::command(kind, overlay, lock)?;
    Ok((command, Invocation { inputs, mode }))
}

/// A recipe with the flags after its `--`, resolved into its command. `mode` is made from
/// the global flags among those (`kbuild plan R --json`).
fn from_recipe(
    path: &std::path::Path,
    overrides: &[String],
    env: &env::Env,
    lock: cli::LockArgs,
    mode: impl FnOnce(&cli::GlobalArgs) -> Mode,
) -> Result<(Command, Invocation)> {
    let loaded = recipe::load(path)?;
    let name = loaded.recipe.command.get_ref().clone();
    let kind = kind_named(&name).ok_or_else(|| {
        error::Error::usage(format!("{}: unknown command \"{name}\"", path.display()))
    })?;
    let mut line = vec!["kbuild".to_string(), name.clone()];
    line.extend(overrides.iter().cloned());
    // The recipe gives the components: on the flag side they are optional.
    let parser =
        Cli::command().mut_subcommand("build", |s| s.mut_arg("components", |a| a.required(false)));
    let matches = parser
        .try_get_matches_from(&line)
        .map_err(|e| override_flags_error(path, e))?;
    let parsed = Cli::from_arg_matches(&matches).map_err(|e| override_flags_error(path, e))?;
    let sub = matches.subcommand().map(|(_, m)| m).expect("a subcommand");
    let flags = flag_options(&parsed.command, sub);
    let mut lock_flags = lock_of(&parsed.command);
    if !lock_flags.no_wait && lock_flags.lock_timeout.is_none() {
        lock_flags = lock;
    }
    let overlay = flags
        .over(options::from_env(env, kind))
        .over(options::from_recipe(&loaded.recipe, &loaded.path));
    resolved(kind, overlay, lock_flags, mode(&parsed.global))
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

async fn run(
    command: Command,
    matches: Option<&ArgMatches>,
    env: &env::Env,
    json: bool,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<()> {
    match command {
        Command::Run(args) => {
            let (command, invocation) = if commands::replay::is_plan_file(&args.recipe) {
                let saved = commands::replay::load(&args.recipe)?;
                ui.phase(
                    "plan",
                    &format!("{} ({})", args.recipe.display(), saved.command.name()),
                );
                let overlay = commands::replay::options(&saved, &args.recipe)?;
                let inputs = saved.inputs.clone();
                let command = resolve::args::command(saved.command, overlay, args.lock.clone())?;
                let mode = Mode::Replay(Box::new(saved));
                (command, Invocation { inputs, mode })
            } else {
                ui.phase("recipe", &args.recipe.display().to_string());
                from_recipe(
                    &args.recipe,
                    &args.overrides,
                    env,
                    args.lock.clone(),
                    |_| Mode::Run,
                )?
            };
            dispatch(command, invocation, ui, interrupt).await
        }
        Command::Plan(args) => {
            let first = args.what[0].as_str();
            let (command, invocation) = match kind_named(first) {
                Some(kind) => {
                    let mut line = vec!["kbuild".to_string()];
                    line.extend(args.what.iter().cloned());
                    let refused = |e: clap::Error| {
                        clap_refusal(
                            &format!("kbuild plan {first}"),
                            &e,
                            &format!("see `kbuild {first} --help`"),
                        )
                    };
                    let matches = match Cli::command().try_get_matches_from(&line) {
                        Ok(matches) => matches,
                        // `kbuild plan build --help`: the command's help, as asked.
                        Err(e) if !e.use_stderr() => {
                            return ui::write_stdout(e.render().to_string().as_bytes())
                        }
                        Err(e) => return Err(refused(e)),
                    };
                    let parsed = Cli::from_arg_matches(&matches).map_err(refused)?;
                    let json = json || parsed.global.json;
                    let sub = matches.subcommand().map(|(_, m)| m).expect("a subcommand");
                    let overlay =
                        flag_options(&parsed.command, sub).over(options::from_env(env, kind));
                    resolved(kind, overlay, cli::LockArgs::default(), Mode::Plan { json })?
                }
                None => {
                    let rest: Vec<String> = args.what[1..]
                        .iter()
                        .skip_while(|a| *a == "--")
                        .cloned()
                        .collect();
                    from_recipe(
                        std::path::Path::new(first),
                        &rest,
                        env,
                        cli::LockArgs::default(),
                        |global| Mode::Plan {
                            json: json || global.json,
                        },
                    )?
                }
            };
            dispatch(command, invocation, ui, interrupt).await
        }
        Command::Recipe(cli::RecipeCommand::Check { files }) => {
            for file in &files {
                let (command, invocation) =
                    from_recipe(file, &[], env, cli::LockArgs::default(), |_| Mode::Run)?;
                let kind = planned_kind(&command).map(CommandKind::name).unwrap_or("?");
                // What it resolves to: the recipe's settings, with the environment's over them.
                let settings: Vec<String> = invocation
                    .inputs
                    .iter()
                    .map(|i| format!("{}={}", i.name, i.value))
                    .collect();
                let line = format!("{}: ok ({kind}: {})\n", file.display(), settings.join(", "));
                ui::write_stdout(line.as_bytes())?;
            }
            Ok(())
        }
        command => match (planned_kind(&command), matches) {
            (Some(kind), Some(matches)) => {
                let overlay = flag_options(&command, matches).over(options::from_env(env, kind));
                let (command, invocation) = resolved(kind, overlay, lock_of(&command), Mode::Run)?;
                dispatch(command, invocation, ui, interrupt).await
            }
            _ => dispatch(command, Invocation::run(Vec::new()), ui, interrupt).await,
        },
    }
}

/// The name and `--out` of a command run with `--timings`.
fn timings_out(command: &Command) -> Option<(&'static str, std::path::PathBuf)> {
    let (name, timings, out) = match command {
        Command::Build(a) => ("build", &a.timings, &a.out),
        Command::QuickRelease(a) => ("quick-release", &a.timings, &a.out),
        Command::Extension(a) => ("extension", &a.timings, &a.out),
        Command::Package(a) => ("package", &a.timings, &a.out),
        _ => return None,
    };
    timings.timings.then(|| (name, out.clone()))
}

/// Runs a resolved command, then writes its timings when asked to, whether it succeeded or
/// not (a failed run's timings show where it stopped). Failing to write them fails a run
/// that succeeded; a failed run keeps its own error. A plan runs nothing, so has none.
async fn dispatch(
    command: Command,
    invocation: Invocation,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<()> {
    let timings = timings_out(&command).filter(|_| invocation.planning().is_none());
    let result = dispatch_command(command, invocation, ui, interrupt).await;
    if let Some((name, out)) = timings {
        let report = ui.timings(&format!("kbuild {name}"), result.is_ok());
        match (
            commands::save_timings(&out, &report, ui, interrupt).await,
            &result,
        ) {
            (Err(e), Ok(())) => return Err(e),
            (Err(e), Err(_)) => ui.warn(&format!("timings not written: {}", e.message)),
            (Ok(()), _) => {}
        }
    }
    result
}

/// Runs a resolved command.
async fn dispatch_command(
    command: Command,
    invocation: Invocation,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<()> {
    let (flag, needs_engine) = context_flag(&command);
    engine::endpoint::choose(flag, engine::endpoint::EnvSnapshot::capture());
    // A context that does not exist is bad input: refused before anything is made.
    if needs_engine {
        engine::endpoint::current()?;
    }
    match command {
        Command::Build(args) => {
            lock_policy(&args.lock);
            resolve::check_out_dir(&args.out)?;
            let request = resolve::resolve_build(&args)?;
            commands::build(&request, &invocation, ui, interrupt).await
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
            commands::doctor::run(&args, &invocation, ui).await
        }
        Command::QuickRelease(args) => {
            lock_policy(&args.lock);
            resolve::check_out_dir(&args.out)?;
            commands::quick_release(&args, &invocation, ui, interrupt).await
        }
        Command::Extension(args) => {
            lock_policy(&args.lock);
            resolve::check_out_dir(&args.out)?;
            commands::extension(&args, &invocation, ui, interrupt).await
        }
        Command::Package(args) => {
            lock_policy(&args.lock);
            resolve::check_out_dir(&args.out)?;
            commands::package(&args, &invocation, ui, interrupt).await
        }
        Command::Verify(args) => {
            resolve::check_verify_dir(&args.dir)?;
            commands::verify(&args, ui, interrupt).await
        }
        Command::Sign(args) => commands::sign(&args, ui),
        Command::Smoke(args) => commands::smoke::run(&args, ui).await,
        Command::Run(_) | Command::Plan(_) | Command::Recipe(_) => Err(error::Error::internal(
            "a recipe or plan reaches dispatch only resolved",
        )),
        Command::Cache(cli::CacheCommand::Export(args)) => {
            let request = resolve::cache::resolve_export(&args)?;
            commands::cache::export(&request, ui, interrupt).await
        }
        Command::Cache(cli::CacheCommand::Import(args)) => {
            let request = resolve::cache::resolve_import(&args)?;
            commands::cache::import(&request, ui, interrupt).await
        }
        Command::Clean(args) => {
            let tree = args
                .all
                .then(|| source::check_tree(&args.kube_root))
                .transpose()?;
            let kube_root = args.kube_root.is_dir().then_some(args.kube_root.as_path());
            let plan = commands::clean::CleanPlan {
                out: &args.out,
                kube_root,
                caches: args.caches || args.all,
                tree: tree.as_deref(),
                engine_wide: args.engine_wide,
                wait: args.wait,
            };
            commands::clean::run(&plan, ui, interrupt).await
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
