//! Command-line interface.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::import::ImportKind;
use crate::store::Channel;
use crate::telemetry::LogFormat;

/// outreach: segments, coupons and SMS / email / WeChat campaigns for restaurant
/// chains, bakeries and milk-tea shops — each message exactly once.
#[derive(Debug, Parser)]
#[command(name = "outreach", version, propagate_version = true)]
pub struct Cli {
    /// Configuration file (default: ./outreach.toml if present).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// Pretend the current time is T (RFC 3339, e.g. 2026-12-24T10:00:00+08:00).
    #[arg(long, global = true, value_name = "T", value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon until SIGINT/SIGTERM (with --once: every due job once,
    /// drain the outbox, print a summary, exit).
    Run(RunArgs),
    /// Seed a realistic demo shop (once), then run the daemon.
    Demo(DemoArgs),
    /// Import customers or orders from CSV or JSON Lines (by extension).
    Import(ImportArgs),
    /// Record an opt-out: nothing more goes to ADDRESS on CHANNEL.
    Optout(OptoutArgs),
    /// Run a job now.
    Jobs(JobsArgs),
    /// Segment sizes, or one customer's attributes, segments and history.
    Segments(SegmentsArgs),
    /// Check campaign files, preview who would get what, or show their figures.
    Campaigns(CampaignsArgs),
    /// The send log, newest first: what went to whom, and why a message was
    /// not sent. `outreach logs ID` shows one message with every attempt.
    Logs(LogsArgs),
}

/// `outreach logs`
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("filters").multiple(true))]
pub struct LogsArgs {
    /// Show this message with every provider call and retry.
    #[arg(value_name = "ID", conflicts_with = "filters")]
    pub message: Option<i64>,
    /// Same as ID.
    #[arg(long = "id", value_name = "ID", conflicts_with_all = ["filters", "message"])]
    pub id: Option<i64>,
    /// Messages of this campaign.
    #[arg(long, value_name = "ID", group = "filters")]
    pub campaign: Option<String>,
    /// sms, email or wechat.
    #[arg(long, value_name = "C", group = "filters")]
    pub channel: Option<String>,
    /// queued, deferred, sending, sent, delivered, failed, dead or suppressed.
    #[arg(long, value_name = "S", group = "filters")]
    pub status: Option<String>,
    /// Messages to this customer.
    #[arg(long, value_name = "CID", group = "filters")]
    pub customer: Option<String>,
    /// Created at or after: a duration back from now (30m, 2h, 7d) or an RFC 3339 time.
    #[arg(long, value_name = "DURATION|T", group = "filters")]
    pub since: Option<String>,
    /// Created before: a duration back from now or an RFC 3339 time.
    #[arg(long, value_name = "DURATION|T", group = "filters")]
    pub until: Option<String>,
    /// Messages per page.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=1000), group = "filters")]
    pub limit: u32,
    /// The next page: the cursor printed after the previous one.
    #[arg(long, value_name = "CURSOR", group = "filters")]
    pub before: Option<String>,
    /// Output format on stdout (json: one object per line; csv: RFC 4180 with a header).
    #[arg(long, value_enum, default_value_t = LogsFormat::Table)]
    pub format: LogsFormat,
    /// Show full phone numbers, e-mail addresses and OpenIDs (masked otherwise).
    #[arg(long)]
    pub reveal: bool,
}

impl LogsArgs {
    /// The message to show, when one is named.
    pub fn message_id(&self) -> Option<i64> {
        self.message.or(self.id)
    }
}

/// Formats of `outreach logs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogsFormat {
    Table,
    Json,
    Csv,
}

/// `outreach run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run every job tick due at --now (default: now) once, send what is due,
    /// print a summary and exit: for tests, backfills and demos. Exit code 1
    /// when a job failed.
    #[arg(long)]
    pub once: bool,
    /// Summary format of --once on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, requires = "once")]
    pub format: OutputFormat,
}

/// `outreach campaigns`
#[derive(Debug, Args)]
pub struct CampaignsArgs {
    #[command(subcommand)]
    pub command: CampaignsCommand,
}

/// What `outreach campaigns` can do.
#[derive(Debug, Subcommand)]
pub enum CampaignsCommand {
    /// Validate every campaign file and the templates it names; print
    /// `file:line:col: message` for each error; exit 1 on any error.
    Check(CampaignsCheckArgs),
    /// Who would get what at --now: audience, suppressions by reason, and
    /// rendered messages. Writes nothing.
    Preview(CampaignsPreviewArgs),
    /// Each campaign's messages by status, coupons issued and redeemed,
    /// redemption rate and the revenue of redeeming orders.
    Stats(CampaignsStatsArgs),
}

/// `outreach campaigns stats [ID]`
#[derive(Debug, Args)]
pub struct CampaignsStatsArgs {
    /// One campaign (default: every campaign that has messages).
    pub id: Option<String>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `outreach campaigns check [DIR]`
#[derive(Debug, Args)]
pub struct CampaignsCheckArgs {
    /// The campaigns folder (default: `campaigns_dir` of the configuration).
    pub dir: Option<PathBuf>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `outreach campaigns preview ID`
#[derive(Debug, Args)]
pub struct CampaignsPreviewArgs {
    /// The campaign id.
    pub id: String,
    /// Show this customer's message only.
    #[arg(long, value_name = "CID")]
    pub customer: Option<String>,
    /// How many rendered messages to show.
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `outreach jobs`
#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: JobsCommand,
}

/// What `outreach jobs` can do.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Run one job now (at --now if given): `segments` or `campaign:ID`.
    Run(JobRunArgs),
}

/// `outreach jobs run JOB`
#[derive(Debug, Args)]
pub struct JobRunArgs {
    /// The job: `segments`, or `campaign:ID` (plan the campaign's coupons
    /// and messages for --now).
    pub job: String,
    /// segments: recompute only customers whose orders or store changed since
    /// the last run, and those whose figures move with the date (falls back to
    /// a full run, saying why, when that is not possible).
    #[arg(long)]
    pub incremental: bool,
    /// segments: a full run that ranks and evaluates every customer instead
    /// of building on the previous run (which re-ranks only the customers
    /// whose figures changed): puts right scores, stages, tiers and
    /// memberships edited in the database by hand, recording each change.
    #[arg(long, conflicts_with = "incremental")]
    pub rebuild: bool,
    /// Summary format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `outreach segments`
#[derive(Debug, Args)]
pub struct SegmentsArgs {
    /// Show this customer's attributes, segments and recent transitions.
    #[arg(long, value_name = "CID")]
    pub customer: Option<String>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `outreach demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many customers the demo shop has.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=50_000_000))]
    pub customers: u64,
    /// Stop after seeding; do not start the daemon.
    #[arg(long)]
    pub seed_only: bool,
    /// Random seed (the default makes every run identical).
    #[arg(long, default_value_t = crate::commands::DEMO_SEED)]
    pub seed: u64,
    /// Write the demo shop as import files into DIR instead of the database
    /// (customers.*, orders.*, and stores.toml to use with --config).
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
    /// File format for --export.
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv, requires = "export")]
    pub export_format: ExportFormat,
}

/// Formats `demo --export` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

/// `outreach import`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// What the file holds.
    #[arg(value_enum)]
    pub kind: ImportKind,
    /// A .csv or .jsonl file.
    pub file: PathBuf,
    /// Summary format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// No progress bar even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

/// Result formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// `outreach optout`
#[derive(Debug, Args)]
pub struct OptoutArgs {
    /// sms, email or wechat.
    pub channel: Channel,
    /// Phone number, e-mail address or WeChat OpenID.
    pub address: String,
}

fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time like 2026-12-24T10:00:00+08:00 ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn logs_take_an_id_or_filters_not_both() {
        let logs = |args: &[&str]| {
            let mut argv = vec!["outreach", "logs"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).map(|c| match c.command {
                Command::Logs(a) => a,
                other => panic!("{other:?}"),
            })
        };
        assert_eq!(logs(&["42"]).unwrap().message_id(), Some(42));
        assert_eq!(logs(&["--id", "42"]).unwrap().message_id(), Some(42));
        let a = logs(&["--status", "dead", "--limit", "10", "--format", "csv"]).unwrap();
        assert_eq!((a.message_id(), a.limit), (None, 10));
        assert!(logs(&["42", "--status", "dead"]).is_err());
        assert!(logs(&["--id", "42", "--campaign", "x"]).is_err());
        assert!(logs(&["--limit", "0"]).is_err());
        assert!(logs(&["--limit", "1001"]).is_err());
    }

    #[test]
    fn now_is_global_and_strict() {
        let cli =
            Cli::try_parse_from(["outreach", "run", "--now", "2026-12-24T10:00:00+08:00"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Run(RunArgs { once: false, .. })
        ));
        let once = Cli::try_parse_from(["outreach", "run", "--once", "--format", "json"]).unwrap();
        assert!(matches!(
            once.command,
            Command::Run(RunArgs {
                once: true,
                format: OutputFormat::Json
            })
        ));
        assert!(Cli::try_parse_from(["outreach", "run", "--format", "json"]).is_err());
        assert_eq!(cli.now.unwrap().to_rfc3339(), "2026-12-24T02:00:00+00:00");
        assert!(Cli::try_parse_from(["outreach", "run", "--now", "tomorrow"]).is_err());
    }
}
