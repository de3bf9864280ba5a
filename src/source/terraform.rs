//! Terraform Cloud audit trail (`GET /organization/audit-trail`).
//!
//! A page is `{"data": [event, ...], "pagination": {...}}`; users keep one
//! file per page or many pages concatenated one per line (NDJSON). Each event
//! becomes one row of the `terraform` table, partitioned by the month of its
//! `timestamp` and owned by `auth.organization_id`. Pages polled with `since`
//! overlap, so the merge dedupes by `id` like every table.

use std::sync::LazyLock;

use datafusion::arrow::datatypes::SchemaRef;

use super::entry::SecondsFormat;
use super::flat::{FlatBatchBuilder, Kind, Layout, nested, top};
use crate::table::TableSpec;

/// Name of the lake table Terraform Cloud events are stored in.
pub const TABLE: &str = "terraform";

/// Where each column of the `terraform` table comes from.
pub static LAYOUT: Layout = Layout {
    columns: &[
        top("id", "id", Kind::Key),
        top("created_at", "timestamp", Kind::Time),
        top("version", "version", Kind::Text),
        top("type", "type", Kind::Text),
        nested("auth_accessor_id", "auth", "accessor_id", Kind::Text),
        nested("auth_description", "auth", "description", Kind::Text),
        nested("auth_type", "auth", "type", Kind::Text),
        nested(
            "auth_impersonator_id",
            "auth",
            "impersonator_id",
            Kind::Text,
        ),
        nested(
            "auth_organization_id",
            "auth",
            "organization_id",
            Kind::Text,
        ),
        nested("request_id", "request", "id", Kind::Text),
        nested("resource_id", "resource", "id", Kind::Text),
        nested("resource_type", "resource", "type", Kind::Text),
        nested("resource_action", "resource", "action", Kind::Text),
        nested("resource_meta", "resource", "meta", Kind::Json),
    ],
    time_rendering: SecondsFormat::Millis,
};

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| LAYOUT.schema());

/// A builder of `terraform` rows.
pub fn batch_builder(rows: usize) -> FlatBatchBuilder {
    FlatBatchBuilder::new(&LAYOUT, SCHEMA.clone(), rows)
}

/// How the `terraform` table is laid out and written.
pub fn table_spec() -> TableSpec {
    TableSpec {
        name: TABLE.into(),
        schema: SCHEMA.clone(),
        time_column: "created_at",
        owner_column: "auth_organization_id",
        sort_columns: &["created_at", "id"],
        key_column: "id",
        dictionary_columns: &[
            "version",
            "type",
            "auth_accessor_id",
            "auth_description",
            "auth_type",
            "auth_impersonator_id",
            "auth_organization_id",
            "resource_type",
            "resource_action",
        ],
        bloom_filter_columns: &["auth_description", "resource_id"],
        // Sorted by time alone, so no other column has page locality; an
        // organisation's trail is a few pages a month, where the column
        // index costs next to nothing, so it is kept.
        scattered_columns: &[],
        // `type` is almost always "Resource": the resource's type and action
        // are what the unified view calls type and action.
        events_select: "id, created_at, resource_type AS type, \
            resource_action AS action, auth_description AS actor, auth_accessor_id AS actor_id, \
            resource_id AS target, CAST(NULL AS VARCHAR) AS ip_address, resource_meta AS data"
            .into(),
        descriptions: DESCRIPTIONS,
    }
}

/// What each column of `terraform` means (go-tfe's `AuditTrail`).
const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "id",
        "the event's id, exactly as Terraform Cloud wrote it (unique in the table)",
    ),
    (
        "created_at",
        "when it happened (timestamp; UTC, milliseconds)",
    ),
    ("version", "version of the audit-trail event format"),
    ("type", "the event's type (Resource, …)"),
    (
        "auth_accessor_id",
        "id of the user or token that acted (auth.accessor_id)",
    ),
    (
        "auth_description",
        "who acted, readable: a user or token name (auth.description)",
    ),
    (
        "auth_type",
        "kind of actor: Client, Impersonated, System (auth.type)",
    ),
    (
        "auth_impersonator_id",
        "the admin acting as the actor, if any (auth.impersonator_id)",
    ),
    (
        "auth_organization_id",
        "the organization (auth.organization_id)",
    ),
    ("request_id", "id of the API request (request.id)"),
    ("resource_id", "id of the resource acted on (resource.id)"),
    (
        "resource_type",
        "its kind: workspace, run, variable, … (resource.type)",
    ),
    (
        "resource_action",
        "what was done: create, update, destroy, … (resource.action)",
    ),
    (
        "resource_meta",
        "the resource's details, compact JSON text (resource.meta)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::scan::parse_entry;
    use datafusion::arrow::array::{Array, AsArray};

    #[test]
    fn flattens_the_documented_sample_event() {
        // The sample response of the Audit Trails API documentation.
        let entry = parse_entry(
            r#"{"id": "ae66e491-db59-457c-8445-9c908ee726ae", "version": "0", "type": "Resource",
            "timestamp": "2020-06-30T17:52:46.000Z",
            "auth": {"accessor_id": "user-MaPuLxAXvtq2PWTH", "description": "pveverka",
                     "type": "Client", "impersonator_id": null, "organization_id": "org-AGLwRmx1snv34Yts"},
            "request": {"id": "4df584d4-7e2a-01e6-6cc0-4adbefa020e6"},
            "resource": {"id": "at-sjt83qTw3GZatuPm", "type": "authentication_token",
                         "action": "create", "meta": {"k": [1, 2]}}}"#
                .as_bytes(),
        )
        .unwrap()
        .unwrap();
        let mut b = batch_builder(1);
        b.append(&entry).unwrap();
        let batch = b.finish();
        let text = |name: &str| {
            let c = batch.column_by_name(name).unwrap().as_string::<i32>();
            c.is_valid(0).then(|| c.value(0).to_string())
        };
        assert_eq!(text("auth_description").as_deref(), Some("pveverka"));
        assert_eq!(text("auth_impersonator_id"), None);
        assert_eq!(
            text("auth_organization_id").as_deref(),
            Some("org-AGLwRmx1snv34Yts")
        );
        assert_eq!(text("resource_action").as_deref(), Some("create"));
        assert_eq!(text("resource_meta").as_deref(), Some(r#"{"k":[1,2]}"#));
        // Terraform's own millisecond rendering is canonical: nothing extra.
        assert_eq!(text("extra"), None);
        let mut b = batch_builder(1);
        let entry = parse_entry(
            r#"{"id":"x","timestamp":"2020-06-30T17:52:46Z","resource":{"id":"r","extra":1}}"#
                .as_bytes(),
        )
        .unwrap()
        .unwrap();
        b.append(&entry).unwrap();
        let batch = b.finish();
        let extra = batch.column_by_name("extra").unwrap().as_string::<i32>();
        assert_eq!(
            extra.value(0),
            r#"{"resource":{"id":"r","extra":1},"timestamp":"2020-06-30T17:52:46Z"}"#
        );
    }
}
