//! `pronto import products FILE`: a shop's product CSV export read into [`Product`]s. Which shop wrote it
//! is told by its header: Shopify's starts its columns with `Handle`, WooCommerce's has `ID`, `Type` and
//! `Name`. Anything else is refused with the columns it lacks, never guessed.

use super::{shopify, woocommerce, Product};
use crate::shop::Platform;
use std::collections::BTreeMap;

/// Why a file cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {message}")]
    Csv { line: u64, message: String },
    #[error("the header is neither Shopify's product export (a `Handle` column) nor WooCommerce's (`ID`, `Type` and `Name` columns); it has: {0}")]
    UnknownFormat(String),
    #[error("the file has a header but no products")]
    Empty,
}

/// Which platform's export a file is, from its header alone.
pub fn platform(csv_bytes: &[u8]) -> Result<Platform, ImportError> {
    open(csv_bytes).map(|o| o.platform)
}

/// A product export opened: its platform, its header, and a reader positioned at its first record.
struct Opened<'a> {
    platform: Platform,
    header: Vec<String>,
    reader: csv::Reader<&'a [u8]>,
}

fn open(csv_bytes: &[u8]) -> Result<Opened<'_>, ImportError> {
    let bytes = csv_bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(csv_bytes);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(&e))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let has = |c: &str| header.iter().any(|h| h == c);
    let platform = if has("Handle") {
        Platform::Shopify
    } else if has("ID") && has("Type") && has("Name") {
        Platform::WooCommerce
    } else {
        return Err(ImportError::UnknownFormat(header.join(", ")));
    };
    Ok(Opened {
        platform,
        header,
        reader,
    })
}

/// Reads a product export. `shop` is the shop it belongs to, as configured (`example.myshopify.com`, a
/// WooCommerce site URL), for the products' links.
pub fn read(shop: &str, csv_bytes: &[u8]) -> Result<(Platform, Vec<Product>), ImportError> {
    let Opened {
        platform,
        header,
        mut reader,
    } = open(csv_bytes)?;
    let mut rows: Vec<BTreeMap<String, String>> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(&e))?;
        rows.push(
            header
                .iter()
                .cloned()
                .zip(record.iter().map(str::to_string))
                .collect(),
        );
    }
    let products = match platform {
        Platform::Shopify => shopify::from_csv(shop, &rows),
        Platform::WooCommerce => woocommerce::from_csv(shop, &rows),
    };
    if products.is_empty() {
        return Err(ImportError::Empty);
    }
    Ok((platform, products))
}

fn csv_error(e: &csv::Error) -> ImportError {
    ImportError::Csv {
        line: e.position().map_or(0, |p| p.line()),
        message: e.to_string(),
    }
}
