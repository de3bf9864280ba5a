//! Synthetic Heroku Enterprise monthly audit archives, for benchmarks,
//! memory checks and demos (`examples/gen_archives.rs` is the command line).
//!
//! Entries come out in shuffled order, with event types in realistic
//! proportions (config changes and releases dominate), dozens of apps and
//! users, nulls where Heroku has them (account-level events have no app), a
//! few unknown keys, and a few late events of the previous month. Each entry
//! is generated from (seed, month, index) alone, so memory stays small at any
//! size and the same seed always gives the same bytes.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// (type, action, weight, has_app)
const EVENTS: &[(&str, &str, u32, bool)] = &[
    ("config_change", "set", 260, true),
    ("config_change", "remove", 60, true),
    ("code_release", "create", 300, true),
    ("addon", "create", 25, true),
    ("addon", "update", 20, true),
    ("addon", "attach", 15, true),
    ("addon", "detach", 10, true),
    ("addon", "destroy", 10, true),
    ("app", "create", 12, true),
    ("app", "update", 30, true),
    ("app", "destroy", 6, true),
    ("collaborator", "create", 25, true),
    ("collaborator", "destroy", 15, true),
    ("domain", "create", 15, true),
    ("domain", "destroy", 8, true),
    ("heroku_config_change", "update", 40, true),
    ("sni_endpoint", "update", 12, true),
    ("app_transfer", "create", 4, true),
    ("team_membership", "create", 30, false),
    ("team_membership", "update", 10, false),
    ("team_membership", "destroy", 8, false),
    ("enterprise_account_membership", "create", 12, false),
    ("enterprise_account_membership", "update", 20, false),
    ("enterprise_account_membership", "destroy", 6, false),
    ("space", "update", 6, false),
    ("team", "update", 4, false),
    ("trusted_ip", "update", 3, false),
];

const CONFIG_VARS: &[&str] = &[
    "DATABASE_URL",
    "REDIS_URL",
    "STRIPE_KEY",
    "SECRET_KEY_BASE",
    "WEB_CONCURRENCY",
    "RAILS_ENV",
    "NODE_ENV",
    "LOG_LEVEL",
    "FEATURE_FLAGS",
    "SENTRY_DSN",
    "CDN_URL",
    "API_TOKEN",
];

/// How large and how varied each event's `data` is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Payload {
    /// A few keys per event type: about 430 bytes of JSON an event.
    #[default]
    Small,
    /// Most events small, one in eight with a large payload (a long
    /// `reason`, the previous values of a config change, the request's
    /// details; about 1.5 KB): about 570 bytes an event on average, the
    /// mix of a busy account.
    Mixed,
    /// Every event with a short `reason` and the request's details: about
    /// 740 bytes an event, larger text everywhere.
    Large,
}

impl std::str::FromStr for Payload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "small" => Ok(Payload::Small),
            "mixed" => Ok(Payload::Mixed),
            "large" => Ok(Payload::Large),
            _ => Err(format!("{s:?} is not small, mixed or large")),
        }
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Months as (year, month).
    pub months: Vec<(i32, u32)>,
    pub per_month: u64,
    pub seed: u64,
    pub account: String,
    pub payload: Payload,
}

/// Words the generated descriptions are made of.
const WORDS: &[&str] = &[
    "rotate",
    "credentials",
    "after",
    "the",
    "incident",
    "review",
    "enable",
    "feature",
    "flag",
    "for",
    "checkout",
    "rollback",
    "of",
    "release",
    "migrate",
    "database",
    "to",
    "new",
    "plan",
    "scale",
    "workers",
    "during",
    "peak",
    "traffic",
    "update",
    "dependency",
    "security",
    "patch",
    "ticket",
    "OPS-4711",
    "approved",
    "by",
    "on-call",
    "temporary",
    "fix",
    "hotfix",
];

/// `n` words, space-separated, with JSON escapes (`\"`, `\n`) now and then.
fn sentence(rng: &mut StdRng, n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        if i > 0 {
            out.push(if rng.random_ratio(1, 12) { ',' } else { ' ' });
            if out.ends_with(',') {
                out.push(' ');
            }
        }
        out.push_str(WORDS[rng.random_range(0..WORDS.len())]);
    }
    if rng.random_ratio(1, 4) {
        out.push_str(" \\\"quoted\\\"\\nsecond line");
    }
    out
}

/// The extra members of a large payload (`Payload::Large`, and the large
/// events of `Payload::Mixed`), appended to `data`'s object.
fn large_members(rng: &mut StdRng, kind: &str, big: bool) -> String {
    let words = if big { 120 } else { 18 };
    let mut members = format!(r#","reason":"{}""#, sentence(rng, words));
    if big && kind == "config_change" {
        let vars: Vec<String> = (0..rng.random_range(8..20))
            .map(|_| {
                format!(
                    r#""{}""#,
                    CONFIG_VARS[rng.random_range(0..CONFIG_VARS.len())]
                )
            })
            .collect();
        members.push_str(&format!(r#","previous":[{}]"#, vars.join(",")));
    }
    members.push_str(&format!(
        r#","request_details":{{"user_agent":"heroku-cli/{}.{}.{} go1.2{} linux-x64","path":"/apps/{:x}/config-vars","request_id":"{:032x}"}}"#,
        rng.random_range(7..11),
        rng.random_range(0..60),
        rng.random_range(0..9),
        rng.random_range(0..4),
        rng.random::<u32>(),
        rng.random::<u128>()
    ));
    members
}

fn month_start(y: i32, m: u32) -> i64 {
    chrono::NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
        .unwrap_or_default()
}

/// Writes one `enterprise-audit-log-<account>-<YYYYMM>.json.gz` per month
/// into `out`; returns the files written.
pub fn generate(spec: &Spec, out: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)?;
    let mut files = Vec::new();
    for &(y, m) in &spec.months {
        let name = format!("enterprise-audit-log-{}-{y:04}{m:02}.json.gz", spec.account);
        let path = out.join(&name);
        let file = std::fs::File::create(&path)?;
        let mut w = BufWriter::with_capacity(1 << 20, GzEncoder::new(file, Compression::default()));
        write_month(spec, y, m, &mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.finish()?;
        files.push(path);
    }
    Ok(files)
}

/// Writes one month's archive (uncompressed JSON) to `w`.
pub fn write_month(spec: &Spec, y: i32, m: u32, w: &mut impl Write) -> io::Result<()> {
    let total_weight: u32 = EVENTS.iter().map(|e| e.2).sum();
    let apps: Vec<String> = (0..48)
        .map(|i| {
            format!(
                "{}-{}",
                ["api", "web", "worker", "billing", "search", "auth"][i % 6],
                i / 6
            )
        })
        .collect();
    let users: Vec<String> = (0..40)
        .map(|i| {
            format!(
                "{}{}@{}.io",
                ["ann", "bob", "cy", "dan", "eve", "fay", "gus", "hal"][i % 8],
                i / 8,
                spec.account
            )
        })
        .collect();
    let teams = ["payments", "web", "platform", "data", "growth"];
    let start = month_start(y, m);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let span = month_start(ny, nm) - start;
    let mut order: Vec<u32> = (0..spec.per_month as u32).collect();
    let month_seed = spec.seed ^ ((y as u64) << 32) ^ ((m as u64) << 8);
    order.shuffle(&mut StdRng::seed_from_u64(month_seed));
    w.write_all(b"{\"entries\":[")?;
    for (pos, &index) in order.iter().enumerate() {
        let mut rng =
            StdRng::seed_from_u64(month_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64);
        // One event in a thousand is a late one from the previous month.
        let t = if rng.random_ratio(1, 1000) {
            start - 1 - rng.random_range(0..3600)
        } else {
            start + (index as i64 * span) / spec.per_month as i64
        };
        let ts = chrono::DateTime::from_timestamp(t, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ");
        let mut pick = rng.random_range(0..total_weight);
        let &(kind, action, _, has_app) = EVENTS
            .iter()
            .find(|e| {
                if pick < e.2 {
                    true
                } else {
                    pick -= e.2;
                    false
                }
            })
            .expect("weights cover the range");
        let actor_index = rng.random_range(0..users.len());
        let owner_index = rng.random_range(0..users.len());
        let (actor, owner) = (&users[actor_index], &users[owner_index]);
        let app = &apps[rng.random_range(0..apps.len())];
        let team = teams[rng.random_range(0..teams.len())];
        let ip = format!(
            "203.0.{}.{}",
            rng.random_range(0..4),
            rng.random_range(1..255)
        );
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            rng.random::<u32>(),
            rng.random::<u16>(),
            rng.random::<u16>() & 0xfff,
            rng.random::<u16>() & 0xfff,
            rng.random::<u64>() & 0xffff_ffff_ffff
        );
        let data = match kind {
            "config_change" => format!(
                r#"{{"changes":["{}"]}}"#,
                CONFIG_VARS[rng.random_range(0..CONFIG_VARS.len())]
            ),
            "code_release" => format!(
                r#"{{"version":{},"commit":"{:07x}","description":"Deploy {:07x}"}}"#,
                rng.random_range(1..5000),
                rng.random::<u32>() & 0xfff_ffff,
                rng.random::<u32>() & 0xfff_ffff
            ),
            "addon" => format!(
                r#"{{"addon":"{}","plan":"standard-0"}}"#,
                [
                    "heroku-postgresql",
                    "heroku-redis",
                    "papertrail",
                    "sendgrid"
                ][rng.random_range(0..4)]
            ),
            "collaborator" | "team_membership" | "enterprise_account_membership" => format!(
                r#"{{"user":{{"email":"{}"}},"role":"member"}}"#,
                users[rng.random_range(0..users.len())]
            ),
            _ => "{}".to_string(),
        };
        let big = match spec.payload {
            Payload::Small => None,
            Payload::Mixed => rng.random_ratio(1, 8).then_some(true),
            Payload::Large => Some(false),
        };
        let data = match big {
            None => data,
            Some(big) => {
                let members = large_members(&mut rng, kind, big);
                match data.as_str() {
                    "{}" => format!("{{{}}}", &members[1..]),
                    _ => format!("{}{members}}}", &data[..data.len() - 1]),
                }
            }
        };
        if pos > 0 {
            w.write_all(b",")?;
        }
        let app_json = if has_app {
            format!(r#"{{"id":"app-{app}","name":"{app}"}}"#)
        } else {
            "null".to_string()
        };
        let team_json = if rng.random_ratio(1, 10) {
            "null".to_string()
        } else {
            format!(r#"{{"id":"team-{team}","name":"{team}"}}"#)
        };
        let unknown = if rng.random_ratio(1, 500) {
            r#","session":{"sso":true}"#
        } else {
            ""
        };
        write!(
            w,
            r#"{{"id":"{id}","type":"{kind}","action":"{action}","actor":{{"id":"user-{actor_index}","email":"{actor}"}},"app":{app_json},"owner":{{"id":"user-{owner_index}","email":"{owner}"}},"enterprise_account":{{"id":"ea-{acct}","name":"{acct}"}},"team":{team_json},"request":{{"ip_address":"{ip}"}},"data":{data},"created_at":"{ts}"{unknown}}}"#,
            acct = spec.account,
        )?;
    }
    w.write_all(b"]}\n")
}
