//! Paged reads: a page and its total, planned for their parameters, and the SQL helpers they need.

use deadpool_postgres::{GenericClient, Pool};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;

/// The `pagination` object of every list answer (events, guests).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub page: i64,
    pub limit: i64,
    pub total: i64,
    pub total_pages: i64,
}

impl Pagination {
    pub fn new(page: i64, limit: i64, total: i64) -> Self {
        Self {
            page,
            limit,
            total,
            total_pages: (total + limit - 1) / limit,
        }
    }
}

/// How a statement of [`page_and_total`] is planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// `prepare_cached`: planned once per connection; after five executions PostgreSQL may
    /// switch to a generic plan. Right for statements whose best plan does not depend on the
    /// parameter values (a list without a search term, a counter lookup).
    Cached,
    /// A statement prepared for this one execution, so PostgreSQL plans it with the actual
    /// values (a custom plan: a prepared statement's first five executions always get one).
    /// For `ILIKE '%term%'`, whose best plan depends on how common the term is: the generic
    /// plan of the search page was a Bitmap scan of every match and a top-N sort (22 ms for
    /// a common term) where the custom one walks an index in page order (1 ms). Costs a
    /// planning (~0.3 ms) and a round trip more.
    Custom,
}

/// A page of `SELECT {columns} {from_where} ORDER BY {order}` and its total.
pub struct PageQuery<'a> {
    pub columns: &'a str,
    /// `FROM … WHERE …`, with `params` bound to its `$1..$n`.
    pub from_where: &'a str,
    pub order: &'a str,
    pub params: &'a [Box<dyn ToSql + Sync + Send>],
    pub page: i64,
    pub limit: i64,
    /// A statement returning the exact total as one `bigint`, with the same `params`
    /// (it may use a subset of them; all are bound). `None`: `SELECT count(*) {from_where}`.
    pub count_sql: Option<String>,
    pub plan: Plan,
}

/// Runs the page and the count. With `spare` (the pool `db` came from), the count runs on a
/// second connection at the same time as the page (latency: the longer of the two instead
/// of their sum) — but only if the pool has one open and idle: a request never
/// waits for a second connection while it holds one, so a pool of 1 or 2 under load cannot
/// deadlock; it falls back to sending both on `db` (pipelined, one round trip).
pub async fn page_and_total(
    db: &impl GenericClient,
    spare: Option<&Pool>,
    q: PageQuery<'_>,
) -> Result<(Vec<tokio_postgres::Row>, i64), tokio_postgres::Error> {
    let n = q.params.len();
    let page_sql = format!(
        "SELECT {} {} ORDER BY {} LIMIT ${} OFFSET ${}",
        q.columns,
        q.from_where,
        q.order,
        n + 1,
        n + 2
    );
    let count_sql = q
        .count_sql
        .unwrap_or_else(|| format!("SELECT count(*) {}", q.from_where));
    let offset = (q.page - 1) * q.limit;
    let filter: Vec<&(dyn ToSql + Sync)> = q
        .params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let mut paged = filter.clone();
    paged.push(&q.limit);
    paged.push(&offset);
    let second = match spare {
        Some(pool) => spare_connection(pool).await,
        None => None,
    };
    let (rows, total) = match &second {
        Some(other) => tokio::try_join!(
            run(db, &page_sql, &paged, q.plan),
            run(other, &count_sql, &filter, q.plan)
        )?,
        None => tokio::try_join!(
            run(db, &page_sql, &paged, q.plan),
            run(db, &count_sql, &filter, q.plan)
        )?,
    };
    let total = total
        .first()
        .map(|r| r.get::<_, i64>(0))
        .unwrap_or_default();
    Ok((rows, total))
}

/// A connection from `pool` if one is free right now (an idle one, or a new one while the
/// pool is below its size); never waits for another request to give one back.
/// An idle connection of `pool`, if one is open: never a new one (a cold Lambda
/// environment's first list would open a second connection, with its TLS handshake, just
/// for the count) and never a wait.
async fn spare_connection(pool: &Pool) -> Option<deadpool_postgres::Object> {
    if pool.status().available == 0 {
        return None;
    }
    let timeouts = deadpool_postgres::Timeouts {
        wait: Some(std::time::Duration::ZERO),
        create: Some(std::time::Duration::ZERO),
        ..pool.timeouts()
    };
    pool.timeout_get(&timeouts).await.ok()
}

async fn run(
    db: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    plan: Plan,
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let stmt = match plan {
        Plan::Cached => db.prepare_cached(sql).await?,
        Plan::Custom => db.prepare(sql).await?,
    };
    db.query(&stmt, params).await
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Escapes `%`, `_` and `\` so user text is matched literally by `ILIKE`.
pub fn like_pattern(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 2);
    out.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("tech"), "%tech%");
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
