//! The lake's directory layout — a public contract that other engines
//! (DuckDB, Athena, Trino, Spark) rely on:
//!
//! ```text
//! <lake>/<table>/year=YYYY/month=M/<owner>.parquet    data, one file per owner and month
//! <lake>/_auditlake/lake.json                          the lake's format version
//! <lake>/_auditlake/archives/<sha256>.json             one record per converted archive
//! ```
//!
//! Partition values are written as Spark and Hive write integer partition
//! columns: unpadded (`year=2024/month=3`). Readers that spell a directory
//! prefix from `month = 3` (DataFusion lists `year=2024/month=3/`) find it;
//! lakes before format 1 wrote `month=03`, which [`parse_partition_dir`]
//! still reads so `auditlake upgrade` can move them.
//!
//! Names starting with `_` or `.` are ignored by Hive-style readers, which is
//! why bookkeeping lives under `_auditlake` and files being written are
//! hidden `.…inprogress` names until they are committed.

/// Where one owner's events of one UTC calendar month live.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    pub year: i32,
    pub month: u32,
    pub owner: String,
}

impl PartitionKey {
    /// `YYYY-MM`, as shown to users.
    pub fn month_label(&self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

/// Directory name of the bookkeeping area inside a lake.
pub const META_DIR: &str = "_auditlake";

/// A partition's data file relative to the lake root, slash-separated.
pub fn partition_rel(table: &str, key: &PartitionKey) -> String {
    format!(
        "{table}/year={}/month={}/{}",
        key.year,
        key.month,
        owner_file_name(&key.owner)
    )
}

/// File name for an owner: bytes outside `[A-Za-z0-9._-]` are
/// percent-encoded, and so is a leading `.` or `_` (which would hide the file
/// from Hive-style readers).
pub fn owner_file_name(owner: &str) -> String {
    let mut name = String::with_capacity(owner.len() + 8);
    for (i, b) in owner.bytes().enumerate() {
        let hidden_start = i == 0 && (b == b'.' || b == b'_');
        if (b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) && !hidden_start {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    if name.is_empty() {
        name.push_str("unknown");
    }
    name.push_str(".parquet");
    name
}

/// Parses `year=YYYY` / `month=M` directory names (also the zero-padded
/// `month=MM` of lakes before format 1).
pub fn parse_partition_dir(name: &str, column: &str) -> Option<u32> {
    let value = name.strip_prefix(column)?.strip_prefix('=')?;
    value.parse().ok()
}

/// True for names a table directory may have: lower-case ASCII letters,
/// digits and `_`, starting with a letter (so a name is also an SQL
/// identifier that needs no quoting).
pub fn is_table_name(name: &str) -> bool {
    name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// True for names that readers of the lake must not see.
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_names_are_safe_file_names() {
        assert_eq!(owner_file_name("acme-corp"), "acme-corp.parquet");
        assert_eq!(owner_file_name("a/b c"), "a%2Fb%20c.parquet");
        assert_eq!(owner_file_name(".x"), "%2Ex.parquet");
        assert_eq!(owner_file_name(""), "unknown.parquet");
        assert_eq!(owner_file_name("é"), "%C3%A9.parquet");
    }

    #[test]
    fn partition_paths() {
        let key = PartitionKey {
            year: 2024,
            month: 3,
            owner: "acme".into(),
        };
        assert_eq!(
            partition_rel("heroku", &key),
            "heroku/year=2024/month=3/acme.parquet"
        );
        let december = PartitionKey {
            year: 2023,
            month: 12,
            owner: "acme".into(),
        };
        assert_eq!(
            partition_rel("heroku", &december),
            "heroku/year=2023/month=12/acme.parquet"
        );
        assert_eq!(key.month_label(), "2024-03");
        assert_eq!(parse_partition_dir("month=3", "month"), Some(3));
        assert_eq!(parse_partition_dir("month=03", "month"), Some(3));
        assert_eq!(parse_partition_dir("monthx=03", "month"), None);
    }
}
