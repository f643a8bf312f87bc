use std::process::ExitCode;

use clap::Parser;

use outreach::cli::{CampaignsCommand, Cli, Command, JobsCommand};
use outreach::config::Settings;
use outreach::{clock, commands, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(&e),
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let settings = Settings::load(cli.config.as_deref())?;
    // One-shot commands see one fixed instant under --now; the daemon's clock
    // starts there and runs on.
    let clock = match &cli.command {
        Command::Run(args) if !args.once => clock::running_from(cli.now),
        Command::Demo(args) if !args.seed_only => clock::running_from(cli.now),
        _ => clock::from_option(cli.now),
    };
    match &cli.command {
        Command::Run(args) if args.once => commands::run_once(&settings, clock, args).await,
        Command::Run(_) => commands::run(&settings, clock).await.map(|_| 0),
        Command::Demo(args) => commands::demo(&settings, clock, args).await.map(|_| 0),
        Command::Import(args) => commands::import(&settings, clock, args).await,
        Command::Optout(args) => commands::optout(&settings, clock, args).await.map(|_| 0),
        Command::Jobs(args) => match &args.command {
            JobsCommand::Run(run) => commands::segments::jobs_run(&settings, clock, run).await,
        },
        Command::Segments(args) => commands::segments::segments(&settings, clock, args).await,
        Command::Campaigns(args) => match &args.command {
            CampaignsCommand::Check(a) => commands::campaigns::check(&settings, clock, a).await,
            CampaignsCommand::Preview(a) => commands::campaigns::preview(&settings, clock, a).await,
            CampaignsCommand::Stats(a) => commands::campaigns::stats(&settings, clock, a).await,
        },
        Command::Logs(args) => {
            commands::logs::logs(&settings, clock, args, cli.config.as_deref()).await
        }
    }
}

/// One sentence on stderr (the cause chain joined by ": "), exit code 2.
fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(2)
}
