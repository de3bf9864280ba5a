//! `auditlake upgrade`: rewrites a lake written before format 1 into
//! format 1, month file by month file, so no lake is stranded by a format
//! change.
//!
//! What changes per file (LAKE.md, "Versions"):
//! - ids stored as 16-byte UUIDs (0.3) become their text again: the
//!   source's own text where `extra` kept it (an id that was not a
//!   canonical UUID), else the UUID's canonical text; that `id` member
//!   leaves `extra`;
//! - timestamps in microseconds (0.1, 0.2) become milliseconds (rounded
//!   down; a finer source text is already in `extra`);
//! - zero-padded month directories (`month=03`) become `month=3`;
//! - the file is written with format 1's encodings and footer.
//!
//! Each file is rewritten atomically at its format-1 path, then the old
//! file is removed, so a kill at any point leaves every row readable in
//! the old file or the new one, and running `upgrade` again finishes the
//! job (a file already in format 1 at its format-1 path is skipped; an old
//! file whose new copy exists is rewritten again from the old one, which is
//! the same). `_auditlake/lake.json` is written last: until then the lake
//! reads as not upgraded. Conversion records are kept as they are.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringBuilder, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMicrosecondType};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::{Column, DataFusionError};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;
use serde_json::value::RawValue;

use super::merge::write_frame;
use crate::lake::parquet::FORMAT_VERSION;
use crate::lake::version::LakeFormat;
use crate::lake::{DataFile, Lake, store_error};
use crate::table::{EXTRA, TableSpec};

/// What an upgrade did.
#[derive(Debug, Default, Serialize)]
pub struct UpgradeSummary {
    pub lake: String,
    /// The format the lake was in (`0.3`, …; `1` when there was nothing to do).
    pub from_format: String,
    pub files: Vec<UpgradedFile>,
    /// Files already in format 1 (from an interrupted upgrade).
    pub already_current: usize,
    /// The lake was in this build's format already: nothing was done.
    pub was_current: bool,
    pub seconds: f64,
}

/// One rewritten month file.
#[derive(Debug, Serialize)]
pub struct UpgradedFile {
    pub table: String,
    pub month: String,
    pub owner: String,
    pub rows: u64,
}

/// Upgrades `lake` to this build's format.
pub async fn upgrade(
    lake: &Lake,
    memory_limit: usize,
    temp_root: &Path,
) -> anyhow::Result<UpgradeSummary> {
    let lock = lake.lock_for_writing().await?;
    let result = upgrade_locked(lake, memory_limit, temp_root).await;
    lock.release().await;
    result
}

/// [`upgrade`], once the lake's writer lock is held.
async fn upgrade_locked(
    lake: &Lake,
    memory_limit: usize,
    temp_root: &Path,
) -> anyhow::Result<UpgradeSummary> {
    let started = Instant::now();
    let format = lake.format().await?;
    let mut summary = UpgradeSummary {
        lake: lake.location().to_string(),
        from_format: format.label(),
        ..UpgradeSummary::default()
    };
    match format {
        LakeFormat::Current => {
            summary.was_current = true;
            return Ok(summary);
        }
        LakeFormat::Newer(_) => return Err(lake.format_error(&format)),
        LakeFormat::Empty => {}
        // Until every file is rewritten, lake.json says an upgrade runs.
        LakeFormat::Legacy(ref from) => lake.write_info(Some(from)).await?,
    }
    let scratch = super::scratch::Scratch::create(temp_root)?;
    let ctx = super::merge_session(memory_limit, scratch.path())?;
    lake.register_store(&ctx);
    for table in lake.tables().await? {
        let spec = crate::source::table_spec_for(&table);
        let files = lake.data_files(&table).await?;
        // A file is current when it is format 1 at its format-1 path. A
        // current file beside an old one of the same month and owner is the
        // old one's copy from an interrupted run: the old one is rewritten.
        let mut current = Vec::with_capacity(files.len());
        for file in &files {
            let facts = lake
                .file_facts(&file.location)
                .await?
                .with_context(|| format!("{} disappeared", lake.object_url(&file.location)))?;
            current.push(
                facts.format_version == Some(FORMAT_VERSION)
                    && lake.partition_path(&table, &file.key) == file.location,
            );
        }
        for (i, file) in files.iter().enumerate() {
            if current[i] {
                let superseded = files
                    .iter()
                    .zip(&current)
                    .any(|(other, &c)| !c && other.key == file.key);
                if !superseded {
                    summary.already_current += 1;
                }
                continue;
            }
            let target = lake.partition_path(&table, &file.key);
            let rows = rewrite(&ctx, lake, &spec, file, &target)
                .await
                .with_context(|| format!("cannot upgrade {}", lake.object_url(&file.location)))?;
            if target != file.location {
                remove(lake, file).await?;
            }
            tracing::info!("upgraded {} ({rows} rows)", lake.object_url(&target));
            summary.files.push(UpgradedFile {
                table: table.clone(),
                month: file.key.month_label(),
                owner: file.key.owner.clone(),
                rows,
            });
        }
    }
    lake.write_info(None).await?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Writes `file`'s rows in format 1 at `target`, sorted as the table
/// declares (text ids and millisecond times may order ties differently).
async fn rewrite(
    ctx: &SessionContext,
    lake: &Lake,
    spec: &TableSpec,
    file: &DataFile,
    target: &object_store::path::Path,
) -> anyhow::Result<u64> {
    let url = lake.object_url(&file.location);
    let old = ctx
        .read_parquet(&url, ParquetReadOptions::default())
        .await?;
    // Every earlier format has the table's columns, in other types.
    let columns: Vec<Expr> = spec
        .schema
        .fields()
        .iter()
        .map(|f| Expr::Column(Column::new_unqualified(f.name())))
        .collect();
    let old = old.select(columns)?;
    let stream = old.execute_stream().await?;
    let source = Arc::new(Format1Rows {
        schema: spec.schema.clone(),
        stream: Mutex::new(Some(stream)),
    });
    let table = StreamingTable::try_new(spec.schema.clone(), vec![source])?;
    let order: Vec<_> = spec
        .sort_columns
        .iter()
        .map(|c| Expr::Column(Column::new_unqualified(*c)).sort(true, false))
        .collect();
    let df = ctx.read_table(Arc::new(table))?.sort(order)?;
    let (file, _) = write_frame(lake, spec, df, target).await?;
    let rows = file.rows;
    crate::lake::integrity::append(lake, "upgrade", Vec::new(), vec![file])
        .await
        .context("the upgraded file was written but not logged")?;
    Ok(rows)
}

/// Removes a replaced file (and, on disk, its directory once empty).
async fn remove(lake: &Lake, file: &DataFile) -> anyhow::Result<()> {
    let url = lake.object_url(&file.location);
    match lake.store().delete(&file.location).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(store_error(e, &url)),
    }
    // The file on disk (object paths percent-encode what a URL would).
    if let Some(root) = lake.local_root()
        && let Some(dir) = crate::lake::commit::local_file(root, lake, &file.location).parent()
    {
        // Fails, harmlessly, while the directory still holds other files.
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

/// An old file's rows, converted batch by batch to format 1.
struct Format1Rows {
    schema: SchemaRef,
    /// The old file's rows; taken by the one execution.
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl std::fmt::Debug for Format1Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Format1Rows")
    }
}

impl PartitionStream for Format1Rows {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = self.schema.clone();
        let stream = self.stream.lock().expect("not poisoned").take();
        let converted = match stream {
            Some(stream) => {
                let schema = schema.clone();
                stream
                    .map(move |batch| {
                        to_format1(&batch?, &schema)
                            .map_err(|e| DataFusionError::External(e.into()))
                    })
                    .boxed()
            }
            None => futures::stream::once(async {
                Err(DataFusionError::Internal(
                    "an upgrade's rows are read once".into(),
                ))
            })
            .boxed(),
        };
        Box::pin(RecordBatchStreamAdapter::new(schema, converted))
    }
}

/// One batch of an old file (columns in the table's order) in format 1.
fn to_format1(batch: &RecordBatch, schema: &SchemaRef) -> anyhow::Result<RecordBatch> {
    use datafusion::arrow::compute::cast;
    // Strings as the table's Utf8, whatever view type the reader chose.
    let mut columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 => cast(c, &DataType::Utf8),
            _ => Ok(c.clone()),
        })
        .collect::<Result<_, _>>()?;
    let extra_index = schema.index_of(EXTRA).ok();
    for (i, field) in schema.fields().iter().enumerate() {
        let column = columns[i].clone();
        match (column.data_type(), field.data_type()) {
            (DataType::FixedSizeBinary(16), DataType::Utf8) => {
                let extra = extra_index.map(|x| columns[x].clone());
                let extra = extra.as_ref().map(|e| e.as_string::<i32>());
                let (ids, new_extra) = uuid_ids_as_text(column.as_fixed_size_binary(), extra)?;
                columns[i] = Arc::new(ids);
                if let (Some(x), Some(new_extra)) = (extra_index, new_extra) {
                    columns[x] = Arc::new(new_extra);
                }
            }
            (DataType::Timestamp(TimeUnit::Microsecond, _), DataType::Timestamp(..)) => {
                let micros = column.as_primitive::<TimestampMicrosecondType>();
                let millis: TimestampMillisecondArray = micros.unary(|v: i64| v.div_euclid(1000));
                columns[i] = Arc::new(millis.with_timezone("UTC"));
            }
            (stored, wanted) if stored != wanted => {
                columns[i] = cast(&column, wanted).with_context(|| {
                    format!("column {} is {stored}, not {wanted}", field.name())
                })?;
            }
            _ => {}
        }
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// 0.3's 16-byte ids as text: the source's text from `extra.id` when the
/// id was not a canonical UUID (that member then leaves `extra`), else the
/// UUID's canonical text. Returns the ids and, when `extra` changed, the new
/// `extra`.
fn uuid_ids_as_text(
    ids: &datafusion::arrow::array::FixedSizeBinaryArray,
    extra: Option<&datafusion::arrow::array::StringArray>,
) -> anyhow::Result<(
    datafusion::arrow::array::StringArray,
    Option<datafusion::arrow::array::StringArray>,
)> {
    let mut out = StringBuilder::with_capacity(ids.len(), ids.len() * 36);
    let mut new_extra = extra.map(|e| StringBuilder::with_capacity(e.len(), e.value_data().len()));
    for row in 0..ids.len() {
        let bytes: [u8; 16] = ids.value(row).try_into().context("an id is not 16 bytes")?;
        let kept = extra
            .filter(|e| e.is_valid(row))
            .map(|e| without_member(e.value(row), "id"))
            .transpose()?
            .flatten();
        match (&kept, new_extra.as_mut()) {
            (Some((id, rest)), Some(b)) => {
                out.append_value(id);
                b.append_option(rest.as_deref());
            }
            (None, b) => {
                out.append_value(uuid::Uuid::from_bytes(bytes).hyphenated().to_string());
                if let (Some(b), Some(e)) = (b, extra) {
                    b.append_option(e.is_valid(row).then(|| e.value(row)));
                }
            }
            (Some(_), None) => unreachable!("an id in extra means there is an extra column"),
        }
    }
    Ok((out.finish(), new_extra.map(|mut b| b.finish())))
}

/// When the JSON object `json` has a string member `name`: its value and
/// the object without it (None when nothing else is left), members in
/// their order.
fn without_member(json: &str, name: &str) -> anyhow::Result<Option<(String, Option<String>)>> {
    let members: Vec<(String, &RawValue)> = serde_json::from_str::<OrderedObject<'_>>(json)
        .with_context(|| format!("extra is not a JSON object: {json}"))?
        .0;
    let Some(pos) = members.iter().position(|(k, _)| k == name) else {
        return Ok(None);
    };
    let Ok(value) = serde_json::from_str::<String>(members[pos].1.get()) else {
        return Ok(None);
    };
    let rest: Vec<String> = members
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != pos)
        .map(|(_, (k, v))| {
            format!(
                "{}:{}",
                serde_json::to_string(k).expect("a string"),
                v.get()
            )
        })
        .collect();
    let rest = (!rest.is_empty()).then(|| format!("{{{}}}", rest.join(",")));
    Ok(Some((value, rest)))
}

/// A JSON object's members in their order, values left as written.
struct OrderedObject<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for OrderedObject<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = OrderedObject<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut members = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                    members.push((k, v));
                }
                Ok(OrderedObject(members))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_one_member_in_place() {
        assert_eq!(
            without_member(r#"{"a":1,"id":"evt-1","b":{"c":[2]}}"#, "id").unwrap(),
            Some((
                "evt-1".to_string(),
                Some(r#"{"a":1,"b":{"c":[2]}}"#.to_string())
            ))
        );
        assert_eq!(
            without_member(r#"{"id":"E"}"#, "id").unwrap(),
            Some(("E".to_string(), None))
        );
        assert_eq!(without_member(r#"{"a":1}"#, "id").unwrap(), None);
        // A non-string id is not an id the column held.
        assert_eq!(without_member(r#"{"id":7}"#, "id").unwrap(), None);
        assert!(without_member("[1]", "id").is_err());
    }
}
