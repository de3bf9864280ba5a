//! How event ids are stored: Heroku and Terraform Cloud give every event a
//! random UUID, and its 36 characters of text were over half of a month's
//! file (18.8 B a row after zstd, for 16 bytes of information). The flat
//! tables store the id as the UUID's 16 bytes (Parquet `FIXED_LEN_BYTE_ARRAY(16)`
//! with the UUID logical type, which DuckDB, Spark and Trino read as a UUID),
//! and the engine shows it as text again.
//!
//! Nothing is lost when an id is not a UUID in canonical (lowercase,
//! hyphenated) form: the column holds a UUID derived from the text (version 8,
//! the first bytes of its SHA-256, so a repeated id still dedupes), and the
//! text itself is kept in `extra`, which the engine's tables show instead
//! (see `engine::text_key`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Arrow type of a stored UUID key.
pub const UUID_TYPE: DataType = DataType::FixedSizeBinary(16);

/// Bytes of a UUID's canonical text.
const TEXT_LEN: usize = 36;

/// An id as stored: the UUID's bytes, and whether the text was the UUID's
/// canonical form (when it was not, the text must be kept beside it).
pub fn encode(text: &str) -> ([u8; 16], bool) {
    if text.len() == TEXT_LEN
        && let Ok(uuid) = Uuid::try_parse(text)
    {
        let mut canonical = [0u8; TEXT_LEN];
        uuid.hyphenated().encode_lower(&mut canonical);
        return (uuid.into_bytes(), canonical == text.as_bytes());
    }
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    (
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .into_bytes(),
        false,
    )
}

/// The canonical text of a stored UUID.
pub fn format<'a>(bytes: &[u8; 16], out: &'a mut [u8; TEXT_LEN]) -> &'a str {
    Uuid::from_bytes(*bytes).hyphenated().encode_lower(out)
}

/// Name of the SQL function that renders a stored UUID as text.
pub const UUID_TEXT: &str = "uuid_text";

/// `uuid_text(bytes)`: the canonical text of 16-byte UUIDs. NULL stays NULL,
/// and a non-null input gives a non-null result, so a required key
/// rendered as text stays required.
pub fn uuid_text_udf() -> ScalarUDF {
    ScalarUDF::from(UuidText {
        signature: Signature::exact(vec![UUID_TYPE], Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct UuidText {
    signature: Signature,
}

impl ScalarUDFImpl for UuidText {
    fn name(&self) -> &str {
        UUID_TEXT
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        Ok(Arc::new(Field::new(UUID_TEXT, DataType::Utf8, nullable)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(input) = arrays[0].as_fixed_size_binary_opt() else {
            return exec_err!("{UUID_TEXT} expects 16-byte binary values");
        };
        let mut out = StringBuilder::with_capacity(input.len(), input.len() * TEXT_LEN);
        let mut buf = [0u8; TEXT_LEN];
        for value in input.iter() {
            match value.map(<&[u8; 16]>::try_from) {
                Some(Ok(bytes)) => out.append_value(format(bytes, &mut buf)),
                Some(Err(_)) => return exec_err!("{UUID_TEXT} expects 16-byte values"),
                None => out.append_null(),
            }
        }
        let result: ArrayRef = Arc::new(out.finish());
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&result, 0)?)
        } else {
            ColumnarValue::Array(result)
        })
    }
}

/// The bytes of each key of a key column, for hashing: the text of a text key,
/// the 16 bytes of a UUID key.
pub fn key_bytes(column: &dyn Array) -> anyhow::Result<Vec<Option<&[u8]>>> {
    Ok(match column.data_type() {
        DataType::Utf8 => column
            .as_string::<i32>()
            .iter()
            .map(|k| k.map(str::as_bytes))
            .collect(),
        DataType::Utf8View => column
            .as_string_view()
            .iter()
            .map(|k| k.map(str::as_bytes))
            .collect(),
        DataType::FixedSizeBinary(_) => column.as_fixed_size_binary().iter().collect(),
        other => anyhow::bail!("a key column cannot be of type {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_uuids_round_trip() {
        let text = "0b6c1e3a-0000-4000-8000-000000000003";
        let (bytes, canonical) = encode(text);
        assert!(canonical);
        assert_eq!(bytes[0], 0x0b);
        assert_eq!(bytes[15], 0x03);
        let mut buf = [0u8; TEXT_LEN];
        assert_eq!(format(&bytes, &mut buf), text);
    }

    #[test]
    fn other_forms_and_other_ids_are_not_canonical() {
        let upper = encode("0B6C1E3A-0000-4000-8000-000000000003");
        assert_eq!(
            upper,
            (encode("0b6c1e3a-0000-4000-8000-000000000003").0, false)
        );
        let simple = encode("0b6c1e3a000040008000000000000003");
        assert!(!simple.1);
        let (derived, canonical) = encode("e1");
        assert!(!canonical);
        assert_eq!(derived, encode("e1").0, "derived ids are stable");
        assert_ne!(derived, encode("e2").0);
        let uuid = Uuid::from_bytes(derived);
        assert_eq!(uuid.get_version_num(), 8);
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
    }
}
