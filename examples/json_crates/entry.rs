//! The members of a Heroku event the `heroku` table keeps, as typed entries
//! that borrow their strings: what each JSON crate parses an archive into.
//! Shared with `benches/compare/crates/src/bin/sonic.rs`.

use std::borrow::Cow;

use serde::Deserialize;

/// A nested object of a Heroku event (`actor`, `app`, `owner`, `team`,
/// `enterprise_account`, `request`): the members the `heroku` table keeps.
#[derive(Deserialize)]
pub struct Nested<'a> {
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub email: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub ip_address: Option<Cow<'a, str>>,
}

/// One event, with `data` as whatever raw form the crate offers (`R`).
#[derive(Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de>"))]
pub struct Entry<'a, R> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub created_at: Cow<'a, str>,
    #[serde(borrow, rename = "type", default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub action: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub actor: Option<Nested<'a>>,
    #[serde(borrow, default)]
    pub app: Option<Nested<'a>>,
    #[serde(borrow, default)]
    pub owner: Option<Nested<'a>>,
    #[serde(borrow, default)]
    pub team: Option<Nested<'a>>,
    #[serde(borrow, default)]
    pub enterprise_account: Option<Nested<'a>>,
    #[serde(borrow, default)]
    pub request: Option<Nested<'a>>,
    #[serde(default = "Option::default")]
    pub data: Option<R>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de>"))]
pub struct Archive<'a, R> {
    #[serde(borrow)]
    pub entries: Vec<Entry<'a, R>>,
}
