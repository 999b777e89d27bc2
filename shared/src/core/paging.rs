//! Paging parameters, validated in one place: every list that pages takes them from here,
//! so no page number can overflow an OFFSET or reach the database unchecked.

use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, Code};

/// Highest page number accepted.
pub const MAX_PAGE: i64 = 1_000_000;

/// A validated page: `LIMIT per_page OFFSET offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Page {
    pub page: i64,
    pub per_page: i64,
    #[serde(skip)]
    pub offset: i64,
}

impl Page {
    /// `page` from 1 to 1,000,000 (default 1), `per_page` from 1 to `max` (default `default`).
    pub fn parse(page: Option<i64>, per_page: Option<i64>, default: i64, max: i64) -> Result<Self, ApiError> {
        let page = page.unwrap_or(1);
        let per_page = per_page.unwrap_or(default);
        if !(1..=MAX_PAGE).contains(&page) || !(1..=max).contains(&per_page) {
            return Err(ApiError::new(
                Code::InvalidQuery,
                format!("page must be 1 to {MAX_PAGE} and per_page 1 to {max}"),
            ));
        }
        let offset =
            (page - 1).checked_mul(per_page).ok_or_else(|| ApiError::new(Code::InvalidQuery, "page is too large"))?;
        Ok(Self { page, per_page, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!(Page::parse(None, None, 50, 200).unwrap(), Page { page: 1, per_page: 50, offset: 0 });
        assert_eq!(Page::parse(Some(3), Some(10), 50, 200).unwrap().offset, 20);
        for (page, per_page) in
            [(Some(0), None), (Some(i64::MAX), None), (Some(-1), None), (None, Some(0)), (None, Some(201))]
        {
            assert!(Page::parse(page, per_page, 50, 200).is_err(), "{page:?} {per_page:?}");
        }
    }
}
