//! String functions whose output can dwarf their input, bounded.
//!
//! DataFusion's memory pool bounds what operators reserve (sorts, joins,
//! aggregations), not what a scalar function allocates for its result:
//! `SELECT length(repeat('x', 1000000000))` built a 1 GB string (3.9 GB
//! RSS) under a 1 GB query memory limit. `repeat`, `lpad` and `rpad` are
//! therefore replaced by wrappers that compute the size of their result
//! from their arguments first and refuse, with one line, a result larger
//! than a quarter of the query memory limit per batch.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{Result, exec_err};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use datafusion::prelude::SessionContext;

/// How a function's result size follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(text, n)`: the text's bytes times `n`.
    Repeat,
    /// `lpad(text, n [, fill])`: `n` characters, up to 4 bytes each.
    Pad,
}

/// A built-in function with a bound on its result's bytes per batch.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: ScalarUDF,
    growth: Growth,
    max_bytes: usize,
}

/// Replaces `repeat`, `lpad` and `rpad` in `ctx` by bounded versions; a
/// result may take at most `max_bytes` per batch.
pub fn register(ctx: &SessionContext, max_bytes: usize) {
    for (name, growth) in [
        ("repeat", Growth::Repeat),
        ("lpad", Growth::Pad),
        ("rpad", Growth::Pad),
    ] {
        if let Ok(inner) = ctx.udf(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
                inner: inner.as_ref().clone(),
                growth,
                max_bytes,
            }));
        }
    }
}

/// The `i`th argument as Int64 values, one per row (`None`: null).
fn counts(value: &ColumnarValue, rows: usize) -> Result<Vec<Option<i64>>> {
    let array = value.to_array(rows)?;
    let array = cast(&array, &DataType::Int64)?;
    Ok(array.as_primitive::<Int64Type>().iter().collect())
}

/// Bytes of each row of a text argument (0 for null).
fn text_bytes(value: &ColumnarValue, rows: usize) -> Result<Vec<usize>> {
    let array = value.to_array(rows)?;
    let array = cast(&array, &DataType::LargeUtf8)?;
    Ok(array
        .as_string::<i64>()
        .iter()
        .map(|s| s.map_or(0, str::len))
        .collect())
}

impl Bounded {
    /// The bytes the result would take, saturating.
    fn result_bytes(&self, args: &ScalarFunctionArgs) -> Result<usize> {
        let rows = args.number_rows.max(1);
        let (Some(text), Some(n)) = (args.args.first(), args.args.get(1)) else {
            return Ok(0);
        };
        let counts = counts(n, rows)?;
        let total = match self.growth {
            Growth::Repeat => text_bytes(text, rows)?
                .iter()
                .zip(&counts)
                .map(|(bytes, n)| bytes.saturating_mul(n.unwrap_or(0).max(0) as usize))
                .fold(0usize, usize::saturating_add),
            Growth::Pad => counts
                .iter()
                .map(|n| (n.unwrap_or(0).max(0) as usize).saturating_mul(4))
                .fold(0usize, usize::saturating_add),
        };
        Ok(total)
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bytes = self.result_bytes(&args)?;
        if bytes > self.max_bytes {
            return exec_err!(
                "{}() would build up to {} bytes of text in one batch, more than a query may ({} bytes, a quarter of --memory-limit)",
                self.inner.name(),
                bytes,
                self.max_bytes
            );
        }
        self.inner.invoke_with_args(args)
    }
}
