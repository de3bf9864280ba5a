//! Command-line interface: argument parsing and what each command prints.
//! Knows nothing of archive formats or Parquet details.

mod convert;
mod ddl;
mod evidence;
mod partial;
mod progress;
mod pull;
mod query;
mod status;
mod upgrade;
mod verify;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::lake::LAKE_ENV;

/// Embedded analytical query engine for SaaS audit archives.
#[derive(Debug, Parser)]
#[command(name = "auditlake", version, about, long_about = None)]
pub struct Cli {
    /// Without a command on a terminal: the interactive shell.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Log more (repeat for more detail); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Runs one command; returns its exit code: 0 when it fully succeeded, 1
/// when it reported failures it went past, 3 when `pull` found history the
/// platform no longer keeps. An `Err` stopped it (exit code 1).
pub async fn run(command: Command) -> anyhow::Result<u8> {
    let ok = match command {
        Command::Convert(args) => convert::run(args).await?,
        Command::Status(args) => status::run(args).await?,
        Command::Query(args) => query::run(args).await?,
        Command::Queries(args) => query::list(args)?,
        Command::Shell(args) => shell(args).await?,
        Command::Ddl(args) => ddl::run(args).await?,
        Command::Upgrade(args) => upgrade::run(args).await?,
        Command::Pull(args) => return pull::run(args).await,
        Command::Verify(args) => verify::run(args).await?,
        Command::Keygen(args) => keygen(args)?,
    };
    Ok(if ok { 0 } else { 1 })
}

async fn shell(args: ShellArgs) -> anyhow::Result<bool> {
    let queries = crate::engine::named::load(args.engine.queries.as_deref())?;
    let engine = args.engine.open(&args.lake).await?;
    // `-f` files run first, then `-c` commands, each in the order given.
    let scripts = args
        .files
        .iter()
        .cloned()
        .map(crate::shell::Script::File)
        .chain(
            args.commands
                .iter()
                .cloned()
                .map(crate::shell::Script::Command),
        )
        .collect();
    crate::shell::Shell::new(engine, queries, args.format, args.maxrows)
        .run(!args.no_init, scripts)
        .await
}

/// Opens the lake of `arg`, which must already hold something.
pub async fn open_existing_lake(arg: &LakeArg) -> anyhow::Result<crate::lake::Lake> {
    let lake = crate::lake::Lake::open(&arg.lake)?;
    if !lake.exists().await? {
        anyhow::bail!(
            "no lake at {}: convert archives first (auditlake convert <PATH>... --lake {})",
            lake.location(),
            arg.lake
        );
    }
    Ok(lake)
}

#[derive(Debug, Args, Clone)]
pub struct LakeArg {
    /// Lake: a directory or s3://BUCKET/PREFIX [default: $AUDITLAKE_LAKE, else ./lake]
    #[arg(long, env = LAKE_ENV, default_value = "lake", hide_default_value = true, hide_env = true)]
    pub lake: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Convert audit archives (files or directories) into the lake.
    Convert(ConvertArgs),
    /// Show the lake's tables, months and converted archives.
    Status(StatusArgs),
    /// Run SQL or a named query once and print the result.
    Query(QueryArgs),
    /// List the named queries and their parameters.
    Queries(QueriesArgs),
    /// Interactive SQL shell (reads statements from stdin when it is not a terminal).
    Shell(ShellArgs),
    /// Print DDL that registers the lake's tables in another engine.
    Ddl(DdlArgs),
    /// Rewrite a lake written by an earlier auditlake into this lake format.
    Upgrade(UpgradeArgs),
    /// Fetch audit trails from a platform's API, keep the raw copies, and convert them.
    Pull(PullArgs),
    /// Check every data file and the integrity log's hash chain: prove the lake holds what was written.
    Verify(VerifyArgs),
    /// Write a new Ed25519 key pair for signing the integrity log (PREFIX.key, PREFIX.pub).
    Keygen(KeygenArgs),
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the keys: PREFIX.key (secret, mode 0600) and PREFIX.pub.
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
}

/// The lake at `location`, signing its log entries with the key at `key`.
pub fn writing_lake(
    location: &str,
    key: Option<&std::path::Path>,
) -> anyhow::Result<crate::lake::Lake> {
    let lake = crate::lake::Lake::open(location)?;
    Ok(match key {
        Some(path) => lake.signing_with(crate::lake::integrity::load_signing_key(path)?),
        None => lake,
    })
}

fn keygen(args: KeygenArgs) -> anyhow::Result<bool> {
    use std::io::Write;
    let (secret, public) = crate::lake::integrity::generate_key();
    let with = |ext: &str| {
        let mut name = args.out.clone().into_os_string();
        name.push(ext);
        PathBuf::from(name)
    };
    let (key_path, pub_path) = (with(".key"), with(".pub"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&key_path).map_err(|e| {
        anyhow::anyhow!(
            "cannot create {} ({e}); keygen never overwrites a key",
            key_path.display()
        )
    })?;
    file.write_all(secret.as_bytes())?;
    std::fs::write(&pub_path, &public)
        .map_err(|e| anyhow::anyhow!("cannot write {} ({e})", pub_path.display()))?;
    println!(
        "wrote {} (secret: keep it off the lake) and {} (give it to auditors: auditlake verify --public-key {})",
        key_path.display(),
        pub_path.display(),
        pub_path.display()
    );
    Ok(true)
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub lake: LakeArg,

    /// Prove these archives (files, directories, s3:// prefixes; e.g. pull's raw copies) entry by entry against the lake instead.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub archives: Vec<String>,

    /// Check every entry's Ed25519 signature against this public key (from `auditlake keygen`).
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,

    /// The head hash anchored earlier (from `status` or a previous verify): the log must still end there.
    #[arg(long, value_name = "SHA256")]
    pub expect_head: Option<String>,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(subcommand)]
    pub source: PullSource,

    /// Lake: a directory or s3://BUCKET/PREFIX [default: $AUDITLAKE_LAKE, else ./lake]
    #[arg(long, env = LAKE_ENV, default_value = "lake", hide_default_value = true, hide_env = true, global = true)]
    pub lake: String,

    /// Retries of a failing request (429, 5xx, dropped connections) before giving up on it.
    #[arg(long, value_name = "N", default_value_t = crate::pull::http::DEFAULT_MAX_RETRIES, global = true)]
    pub max_retries: u32,

    /// Seconds a request may wait for the server before it is retried: an API page must arrive whole within it; a download may take longer as long as data keeps coming.
    #[arg(long, value_name = "SECS", default_value_t = crate::pull::http::DEFAULT_TIMEOUT.as_secs_f64(), value_parser = parse_timeout, global = true)]
    pub timeout: f64,

    /// Memory limit of the conversion (e.g. 256M, 1G).
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = parse_size, global = true)]
    pub memory_limit: usize,

    /// Directory for temporary staging and spill files [default: system temp dir].
    #[arg(long, value_name = "DIR", global = true)]
    pub temp_dir: Option<PathBuf>,

    /// Sign each integrity-log entry with this Ed25519 key (from `auditlake keygen`).
    #[arg(long, value_name = "FILE", global = true)]
    pub sign_key: Option<PathBuf>,

    /// Keep the raw bodies here (a directory or s3://BUCKET/PREFIX) instead of <lake>/_auditlake/raw.
    #[arg(long, value_name = "DIR", global = true)]
    pub raw: Option<String>,

    /// Print only failures.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Print a JSON summary on stdout (for schedulers).
    #[arg(long, conflicts_with = "quiet", global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PullSource {
    /// Heroku Enterprise monthly audit-trail archives (token: HEROKU_API_KEY or ~/.netrc).
    Heroku {
        /// The Enterprise account's name.
        #[arg(long)]
        account: String,
        /// First month to pull (YYYY-MM).
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        from: Option<String>,
        /// Last month to pull (YYYY-MM).
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        to: Option<String>,
    },
    /// Heroku Enterprise daily events, paged with Range/Next-Range (token: HEROKU_API_KEY or ~/.netrc).
    HerokuEvents {
        /// The Enterprise account's name.
        #[arg(long)]
        account: String,
        /// First day to pull [default: the checkpoint's last day, else 7 days ago].
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: Option<chrono::NaiveDate>,
        /// Last day to pull [default: today].
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: Option<chrono::NaiveDate>,
    },
    /// Terraform Cloud / Enterprise audit trail (token: TFE_TOKEN or TF_TOKEN_app_terraform_io).
    Terraform,
}

/// Parses `YYYY-MM`.
fn parse_month(text: &str) -> Result<String, String> {
    chrono::NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
        .map(|d| d.format("%Y-%m").to_string())
        .map_err(|_| format!("{text:?} is not a month (YYYY-MM)"))
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    #[command(flatten)]
    pub lake: LakeArg,

    /// Sign each integrity-log entry with this Ed25519 key (from `auditlake keygen`).
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,

    /// Memory limit of the rewrite (e.g. 256M, 1G); sorts spill to disk beyond it.
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = parse_size)]
    pub memory_limit: usize,

    /// Directory for temporary spill files [default: system temp dir].
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,

    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DdlArgs {
    /// The engine to write DDL for.
    #[arg(long, value_enum)]
    pub engine: DdlEngine,

    #[command(flatten)]
    pub lake: LakeArg,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DdlEngine {
    Duckdb,
    Athena,
    Trino,
    Spark,
}

/// Options of every command that queries the lake.
#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// Allow DDL, DML and COPY (e.g. COPY (...) TO 'out.parquet'); the lake is read-only otherwise.
    #[arg(long)]
    pub allow_write: bool,

    /// Memory limit of query execution (e.g. 512M, 2G).
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    pub memory_limit: usize,

    /// A directory of your own named queries (*.sql), added to the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub queries: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["sql", "file", "named"])))]
pub struct QueryArgs {
    /// SQL to run (several statements separated by ';'); '-' reads it from stdin.
    pub sql: Option<String>,

    /// Read the SQL from a file.
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Run a named query (see `auditlake queries`).
    #[arg(long, value_name = "NAME")]
    pub named: Option<String>,

    /// A parameter KEY=VALUE, bound to the placeholder $KEY (repeatable).
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE", value_parser = crate::engine::named::parse_param)]
    pub params: Vec<(String, String)>,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: crate::print_format::OutputFormat,

    /// Write the result to a file instead of stdout; it appears only once the query has succeeded.
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Stop the query (exit 1) after this many seconds, e.g. in a scheduled job.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub timeout: Option<f64>,

    /// Also write evidence for an auditor into DIR (and DIR.tar.gz): the result as CSV and Parquet, the SQL, the parameters, the files read with their SHA-256, the log head and a verify report.
    #[arg(long, value_name = "DIR")]
    pub evidence: Option<PathBuf>,

    #[command(flatten)]
    pub lake: LakeArg,

    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct QueriesArgs {
    /// A directory of your own named queries (*.sql), added to the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub queries: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct ShellArgs {
    #[command(flatten)]
    pub lake: LakeArg,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// Output format to start with (`.format` changes it).
    #[arg(long, value_enum, default_value = "table")]
    pub format: crate::print_format::OutputFormat,

    /// Rows shown per result [default: 40 on a terminal, every row into a pipe] (`.maxrows` changes it).
    #[arg(long, value_name = "N")]
    pub maxrows: Option<usize>,

    /// Run SQL (or a meta-command) and exit; repeatable. Exits 1 at the first error.
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub commands: Vec<String>,

    /// Run the statements and meta-commands of FILE and exit; repeatable, run before -c. Exits 1 at the first error.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Do not run the rc file ($XDG_CONFIG_HOME/auditlake/shellrc, else ~/.config/auditlake/shellrc).
    #[arg(short = 'n', long = "no-init")]
    pub no_init: bool,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Archive files, or directories searched recursively for *.json, *.ndjson, *.jsonl and *.csv (plain or .gz); s3://BUCKET/KEY objects or prefixes likewise.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,

    #[command(flatten)]
    pub lake: LakeArg,

    /// Sign each integrity-log entry with this Ed25519 key (from `auditlake keygen`).
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,

    /// Read every input as this format instead of detecting it from content.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<SourceFormat>,

    /// Read every input as the export described by this mapping file (TOML; see README).
    #[arg(long, value_name = "FILE", conflicts_with = "format")]
    pub mapping: Option<PathBuf>,

    /// Convert archives again even if their sha256 is already recorded.
    #[arg(long)]
    pub force: bool,

    /// Archives read in parallel [default: number of CPUs].
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,

    /// Memory limit of the merge engine (e.g. 256M, 1G); sorts spill to disk beyond it.
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = parse_size)]
    pub memory_limit: usize,

    /// Directory for temporary staging and spill files [default: system temp dir].
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,

    /// Largest entry an archive may hold (bytes of its JSON text, e.g. 64M, 512M); an archive with a larger one fails.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_size)]
    pub max_entry_size: usize,

    /// Do not convert again the archives of an interrupted run (for archives gone for good): forget its journal.
    #[arg(long)]
    pub forget_interrupted: bool,

    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,

    /// Print a JSON summary of the run on stdout (for scheduled jobs).
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,
}

/// The built-in formats `--format` can force.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum SourceFormat {
    /// Heroku Enterprise monthly archive: {"entries": [...]}
    Heroku,
    /// Heroku daily event pages: [event, ...]
    HerokuEvents,
    /// Terraform Cloud audit trail pages: {"data": [...], "pagination": ...}, one per file or per line
    Terraform,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub lake: LakeArg,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses sizes such as `512M`, `2G`, `1048576`.
/// `--timeout`: positive seconds, at most a day.
fn parse_timeout(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!(
            "{text:?} is not a timeout: give seconds, more than 0 and at most 86400"
        )),
    }
}

pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let (digits, unit) = t
        .find(|c: char| !c.is_ascii_digit())
        .map_or((t, ""), |i| t.split_at(i));
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (examples: 512M, 2G)"))?;
    let factor = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("{text:?}: unknown unit (use K, M or G)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Human-readable byte count.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("12X").is_err());
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12), "12 B");
    }
}
